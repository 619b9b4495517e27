//! Structure-aware fuzzing of the model folder on stable Rust (proptest): a model folder can
//! arrive inside a cloned repository (`.turboprop/models/`), so every byte of it is
//! untrusted input.
//!
//! Each case starts from a real (tiny) BERT folder and damages one file:
//! - `config.json` and `tokenizer.json`: a JSON value changed (sizes huge, zero, negative or
//!   fractional, strings emptied or made long, lists duplicated or emptied, keys removed),
//!   or the bytes flipped, truncated or replaced;
//! - `model.safetensors`: its JSON header edited the same way (tensor shapes, dtypes and
//!   offsets) and written back with a correct length prefix, so the parser behind the
//!   prefix sees it; or the length prefix set to extremes; or bytes flipped or truncated.
//!
//! Loading must then fail with an error or succeed, and a loaded model must embed a text
//! and a query; nothing may panic, and no case may allocate more than
//! [`MAX_CASE_ALLOCATION`] (a counting allocator watches).
//!
//! `TURBOPROP_FUZZ_CASES` sets the number of cases (default 200).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use serde_json::Value;
use turboprop_embed::{write_tiny_bert, BertEmbedder, BertOptions, Embedder};
use turboprop_types::NoTermStats;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counts are kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most one case may allocate beyond what was live when it began.
const MAX_CASE_ALLOCATION: usize = 256 << 20;

const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

#[derive(Debug, Clone)]
enum Damage {
    FlipBit(usize, u8),
    Truncate(usize),
    Noise(Vec<u8>),
    /// A JSON value changed (the safetensors header for the weights).
    Json(usize, Edit),
    /// The safetensors length prefix set to this.
    Prefix(u64),
}

#[derive(Debug, Clone)]
enum Edit {
    Number(f64),
    Text(String),
    Duplicate,
    Empty,
    Remove,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        prop_oneof![
            Just(0.0),
            Just(-1.0),
            Just(1.5),
            Just(1e18),
            Just(4294967296.0),
            Just(1e300),
            Just(65536.0),
            Just(3.0)
        ]
        .prop_map(Edit::Number),
        prop_oneof![
            Just(String::new()),
            Just("F64".to_owned()),
            Just("I8".to_owned()),
            Just("x".repeat(10_000)),
            "[A-Za-z0-9_.]{0,12}",
        ]
        .prop_map(Edit::Text),
        Just(Edit::Duplicate),
        Just(Edit::Empty),
        Just(Edit::Remove),
    ]
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(o, b)| Damage::FlipBit(o, b)),
        any::<usize>().prop_map(Damage::Truncate),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(Damage::Noise),
        (any::<usize>(), edit()).prop_map(|(i, e)| Damage::Json(i, e)),
        (any::<usize>(), edit()).prop_map(|(i, e)| Damage::Json(i, e)),
        prop_oneof![
            Just(0u64),
            Just(7),
            Just(u64::MAX),
            Just(1 << 40),
            any::<u64>()
        ]
        .prop_map(Damage::Prefix),
    ]
}

fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Object(o) => o.values().map(count).sum(),
        _ => 0,
    }
}

fn edit_nth(v: &mut Value, target: usize, i: &mut usize, e: &Edit) -> bool {
    if *i == target {
        match e {
            Edit::Number(n) => {
                *v = serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
            }
            Edit::Text(s) => *v = Value::String(s.clone()),
            Edit::Duplicate => match v {
                Value::Array(a) => {
                    if let Some(x) = a.first().cloned() {
                        a.push(x);
                    }
                }
                Value::Object(o) => {
                    if let Some((k, x)) = o.iter().next().map(|(k, x)| (k.clone(), x.clone())) {
                        o.insert(format!("{k}_copy"), x);
                    }
                }
                _ => {}
            },
            Edit::Empty => match v {
                Value::Array(a) => a.clear(),
                Value::Object(o) => o.clear(),
                _ => {}
            },
            Edit::Remove => {
                if let Value::Object(o) = v {
                    if let Some(k) = o.keys().next().cloned() {
                        o.remove(&k);
                    }
                }
            }
        }
        return true;
    }
    *i += 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|c| edit_nth(c, target, i, e)),
        Value::Object(o) => o.values_mut().any(|c| edit_nth(c, target, i, e)),
        _ => false,
    }
}

fn edited(mut value: Value, at: usize, e: &Edit) -> Value {
    let n = count(&value);
    let mut i = 0;
    edit_nth(&mut value, at % n, &mut i, e);
    value
}

fn apply(name: &str, bytes: &[u8], d: &Damage) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let weights = name == "model.safetensors";
    match d {
        Damage::FlipBit(o, bit) => {
            if !b.is_empty() {
                let i = o % b.len();
                b[i] ^= 1 << bit;
            }
        }
        Damage::Truncate(o) => b.truncate(o % (b.len() + 1)),
        Damage::Noise(n) => b = n.clone(),
        Damage::Json(at, e) if weights => {
            // safetensors: u64 header length, JSON header, tensor bytes.
            let Some(len) = b
                .get(..8)
                .map(|p| u64::from_le_bytes(p.try_into().unwrap_or([0; 8])))
            else {
                return b;
            };
            let end = 8usize.saturating_add(len as usize);
            let Some(header) = b.get(8..end).and_then(|h| serde_json::from_slice(h).ok()) else {
                return b;
            };
            let header = serde_json::to_vec(&edited(header, *at, e)).unwrap_or_default();
            let mut out = (header.len() as u64).to_le_bytes().to_vec();
            out.extend_from_slice(&header);
            out.extend_from_slice(&b[end..]);
            b = out;
        }
        Damage::Json(at, e) => {
            if let Ok(v) = serde_json::from_slice::<Value>(&b) {
                b = serde_json::to_vec(&edited(v, *at, e)).unwrap_or_default();
            }
        }
        Damage::Prefix(v) => {
            if weights && b.len() >= 8 {
                b[..8].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
    b
}

fn exercise(dir: &Path) {
    let options = BertOptions {
        max_tokens: 64,
        ..BertOptions::default()
    };
    if let Ok(model) = BertEmbedder::load(dir, "fuzzed", options) {
        let _ = model.embed_documents(&["fn split_pot(winners: &[Seat]) {}", ""]);
        let _ = model.embed_query("split the pot", &NoTermStats);
        let _ = model.token_count("a b c");
    }
}

fn cases() -> u32 {
    std::env::var("TURBOPROP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_damaged_model_folder_never_panics_or_allocates_without_bound(
        seed in 0u64..4,
        file in 0usize..FILES.len(),
        damages in proptest::collection::vec(damage(), 1..3),
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        write_tiny_bert(tmp.path(), seed).expect("tiny model");
        let name = FILES[file];
        let path = tmp.path().join(name);
        let mut bytes = std::fs::read(&path).expect("read");
        for d in &damages {
            bytes = apply(name, &bytes, d);
        }
        std::fs::write(&path, &bytes).expect("write");
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        exercise(tmp.path());
        let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        prop_assert!(
            peak < MAX_CASE_ALLOCATION,
            "{name} with {:?} made one case allocate {} MiB", damages, peak >> 20
        );
    }
}

#[test]
fn the_pristine_tiny_model_loads_and_embeds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_tiny_bert(tmp.path(), 1).expect("tiny model");
    let model = BertEmbedder::load(tmp.path(), "tiny", BertOptions::default()).expect("load");
    let v = model.embed_documents(&["fn a() {}"]).expect("embed");
    assert_eq!(v.len(), 1);
    for name in FILES {
        assert!(tmp.path().join(name).is_file(), "{name} to damage");
    }
}
