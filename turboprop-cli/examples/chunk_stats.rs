//! What each chunking method makes of real code: chunks per file, the model's tokens per
//! chunk, and the share of chunks the model truncates (issue 17's cost table).
//!
//! Every source file under the given folders (Rust, Python, JavaScript, TypeScript, Go, Java,
//! C, C++, Markdown; `.gitignore` and hidden files respected, `node_modules`, `dist`, `build`
//! and `*.min.js` left out) is cut with `tp`'s own `chunk_source`, once with line windows and
//! once along its syntax, and every chunk's text (as it is embedded) is counted with the model's
//! tokenizer, `[CLS]` and `[SEP]` included, up to 512 tokens.
//!
//! ```text
//! cargo run --release -p turboprop-cli --example chunk_stats -- \
//!     --model-dir DIR [--budget 256] [--model-max 256] <folder>...
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use turboprop_embed::{BertEmbedder, BertOptions};
use turboprop_types::{ChunkMethod, ChunkingConfig};

const EXTENSIONS: &[&str] = &[
    "rs", "py", "js", "mjs", "cjs", "jsx", "ts", "tsx", "go", "java", "c", "h", "cc", "cpp", "hpp",
    "cxx", "md",
];

fn sources(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ignore::WalkBuilder::new(root)
        .build()
        .flatten()
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .map(|e| e.into_path())
        .filter(|p| {
            let s = p.to_string_lossy();
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            EXTENSIONS.contains(&ext)
                && !s.ends_with(".min.js")
                && !s.ends_with(".d.ts")
                && !["/node_modules/", "/dist/", "/build/"]
                    .iter()
                    .any(|d| s.contains(d))
        })
        .collect();
    out.sort();
    out
}

#[derive(Default)]
struct Tally {
    files: usize,
    chunks: usize,
    lines: u64,
    tokens: Vec<usize>,
    fallbacks: usize,
}

impl Tally {
    fn row(&self, name: &str, model_max: usize) -> String {
        let mut t = self.tokens.clone();
        t.sort_unstable();
        let pct = |q: f64| {
            t.get(((t.len() as f64 - 1.0) * q) as usize)
                .copied()
                .unwrap_or(0)
        };
        let over = t.iter().filter(|&&n| n > model_max).count();
        format!(
            "| {name} | {} | {} | {:.1} | {:.1} | {:.0} | {} | {} | {:.1}% | {} |",
            self.files,
            self.chunks,
            self.chunks as f64 / self.files.max(1) as f64,
            self.lines as f64 / self.chunks.max(1) as f64,
            t.iter().sum::<usize>() as f64 / t.len().max(1) as f64,
            pct(0.5),
            pct(0.9),
            100.0 * over as f64 / t.len().max(1) as f64,
            self.fallbacks,
        )
    }
}

fn main() -> ExitCode {
    let mut model_dir = None;
    let mut budget = 256usize;
    let mut model_max = 256usize;
    let mut roots = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model-dir" => model_dir = args.next().map(PathBuf::from),
            "--budget" => budget = args.next().and_then(|b| b.parse().ok()).unwrap_or(256),
            "--model-max" => model_max = args.next().and_then(|b| b.parse().ok()).unwrap_or(256),
            _ => roots.push(PathBuf::from(arg)),
        }
    }
    let Some(model_dir) = model_dir else {
        eprintln!(
            "usage: chunk_stats --model-dir DIR [--budget 256] [--model-max 256] <folder>..."
        );
        return ExitCode::from(2);
    };
    let options = BertOptions {
        max_tokens: 512,
        ..BertOptions::default()
    };
    let model = match BertEmbedder::load(&model_dir, "all-MiniLM-L6-v2", options) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "| corpus, method | files | chunks | chunks/file | lines/chunk | tokens/chunk (mean) | median | p90 | truncated (over {model_max}) | files cut into windows or lines despite a grammar |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let methods = [
        ("windows", ChunkMethod::Windows),
        ("syntax", ChunkMethod::Syntax),
    ];
    let mut totals: Vec<Tally> = methods.iter().map(|_| Tally::default()).collect();
    for root in &roots {
        let files = sources(root);
        let name = root.file_name().map_or_else(
            || root.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        for ((label, method), total) in methods.iter().zip(&mut totals) {
            let config = ChunkingConfig {
                method: *method,
                max_tokens: budget as u32,
                ..ChunkingConfig::default()
            };
            let mut tally = Tally::default();
            for path in &files {
                let Ok(bytes) = std::fs::read(path) else {
                    continue;
                };
                let rel = path.strip_prefix(root).unwrap_or(path).to_string_lossy();
                let chunked = turboprop_cli::chunk_source(&rel, &bytes, &config);
                tally.files += 1;
                tally.fallbacks += usize::from(chunked.note.is_some());
                for c in &chunked.chunks {
                    tally.chunks += 1;
                    tally.lines += u64::from(c.line_end - c.line_start + 1);
                    let text = c.embed_text(&bytes);
                    tally.tokens.push(model.token_count(&text).unwrap_or(0));
                }
            }
            println!("{}", tally.row(&format!("{name}, {label}"), model_max));
            total.files += tally.files;
            total.chunks += tally.chunks;
            total.lines += tally.lines;
            total.fallbacks += tally.fallbacks;
            total.tokens.extend(tally.tokens);
        }
    }
    for ((label, _), total) in methods.iter().zip(&totals) {
        println!("{}", total.row(&format!("**all, {label}**"), model_max));
    }
    ExitCode::SUCCESS
}
