//! Tests of the fast path's candidates: they are exactly those of the plain two-stage
//! definition (a pool by Hamming distance, then the best share by asymmetric estimate).

use std::ops::Range;
use std::sync::Arc;

use super::*;
use crate::writer::{IndexSpec, IndexWriter, NewChunk, WriterOptions};
use turboprop_storage::{Directory, LockWait, MemDirectory, ModelGuard};
use turboprop_types::{ChunkingConfig, ContentHash, FileRecord};

/// A row of ±1 values (normalized) with the sign pattern of `bits` (bit j: dimension j)
/// and a little noise, so its code is `bits`.
fn row(bits: u64, i: u64) -> Vec<f32> {
    (0..64)
        .map(|j| {
            let noise = ((i.wrapping_mul(31).wrapping_add(j) * 2_654_435_761) % 1000) as f32;
            let sign = if bits >> j & 1 == 1 { 1.0 } else { -1.0 };
            sign * (1.0 + noise / 100_000.0) / 8.0
        })
        .collect()
}

fn xorshift(mut s: u64) -> u64 {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    s
}

/// 20,000 rows of 64 dimensions in one segment. Rows 4100..4700 (group A) agree with
/// the query's signs but for dimension 0 and up to 4 others: the smallest Hamming
/// distances. Rows 4700..5100 (group B) agree on dimension 0, where the query is
/// largest, and disagree on 20 others: farther by distance, better by estimate. The
/// rest are random.
fn index_with_a_decoy_crowd() -> Index {
    index_of(64, 400, |i| {
        let rnd = xorshift(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let bits = match i {
            4100..4700 => {
                let flips = (0..(rnd % 5)).fold(0u64, |m, k| m | 1 << (1 + xorshift(rnd + k) % 63));
                !1u64 & !flips
            }
            4700..5100 => {
                let mut zeros = 0u64;
                let mut k = rnd;
                while zeros.count_ones() < 20 {
                    k = xorshift(k);
                    zeros |= 1 << (1 + k % 63);
                }
                !zeros
            }
            _ => rnd,
        };
        row(bits, i)
    })
}

/// One segment of `files` files of 50 rows of `dims` dimensions, row `i` `vector(i)`.
fn index_of(dims: u32, files: u64, vector: impl Fn(u64) -> Vec<f32>) -> Index {
    let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    let spec = IndexSpec {
        lexical: None,
        model: ModelGuard {
            id: "test-vectors".into(),
            dimensions: dims,
        },
        chunking: ChunkingConfig::default(),
        spaces: Vec::new(),
    };
    let opts = WriterOptions {
        wait: LockWait::NoWait,
        rebuild: true,
        ..WriterOptions::default()
    };
    let mut w = IndexWriter::open_in(Arc::clone(&dir), spec, opts, || {}).expect("writer");
    for f in 0..files {
        let chunks = (0..50u64)
            .map(|r| {
                let i = f * 50 + r;
                NewChunk {
                    lexical: None,
                    line_start: (r * 10 + 1) as u32,
                    line_end: (r * 10 + 10) as u32,
                    byte_start: r * 100,
                    byte_end: r * 100 + 100,
                    hash: ContentHash::of(&i.to_le_bytes()),
                    vector: vector(i),
                    terms: Vec::new(),
                    spaces: Vec::new(),
                    symbol: None,
                    kind: None,
                }
            })
            .collect();
        let name = format!("src/f{f:04}.rs");
        let record = FileRecord::new(name.as_str(), 5000, 7, ContentHash::of(name.as_bytes()))
            .expect("record");
        w.put_file(record, chunks).expect("put");
    }
    w.commit().expect("commit");
    Index::open_in(dir).expect("open")
}

/// The candidates of the 1-bit fast path are exactly those of the plain two-stage
/// definition (the segment's pool by Hamming distance, every row tied at the cut
/// included, then the best share by asymmetric estimate), also when one block holds
/// far more of the pool than it estimates while its codes are in cache.
#[test]
fn candidates_are_the_best_estimates_of_the_whole_pool() {
    let index = index_with_a_decoy_crowd();
    let mut query = vec![1.0f32; 64];
    query[0] = 30.0;
    let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
    query.iter_mut().for_each(|x| *x /= norm);
    // A pool of about 1,000 rows: all of group A and some of group B.
    let (want, limit) = (1000usize.div_ceil(POOL_FACTOR), 10);
    let want_rows = best_of_pool(&index, &query, want, |code, qc| {
        code.iter().zip(qc).map(|(a, b)| (a ^ b).count_ones()).sum()
    });
    // Group B wins by estimate, though group A is nearer by distance.
    let b = want_rows
        .iter()
        .filter(|r| (4700..5100).contains(*r))
        .count();
    assert!(b > want / 2, "{b} of group B in {want_rows:?}");
    assert_candidates(&index, &query, want, limit, &want_rows);
}

/// The plain two-stage definition of the fast path's candidates in segment 0: the
/// `want` × [`POOL_FACTOR`] rows nearest by `distance(code, query's code)`, every row
/// tied at the cut included, then the best `want` of those by asymmetric estimate
/// (rows ascending).
fn best_of_pool(
    index: &Index,
    query: &[f32],
    want: usize,
    distance: impl Fn(&[u64], &[u64]) -> u32,
) -> Vec<u32> {
    let codes = index.segments[0].codes(0).expect("codes");
    let rows = index.segments[0].reader.rows();
    let mut qc = vec![0u64; codes.words()];
    quant::encode(query, codes.center(), &mut qc);
    let w = codes.words();
    let code = |r: usize| &codes.codes()[r * w..(r + 1) * w];
    let dist: Vec<u32> = (0..rows).map(|r| distance(code(r), &qc)).collect();
    let mut sorted = dist.clone();
    sorted.sort_unstable();
    let cut = sorted[want * POOL_FACTOR - 1];
    let tables = quant::ByteTables::new(query);
    let mut pooled: Vec<Scored> = (0..rows)
        .filter(|&r| dist[r] <= cut)
        .map(|r| Scored {
            score: tables.score(code(r)),
            segment: 0,
            row: r as u32,
        })
        .collect();
    pooled.sort_by(Scored::better_first);
    let mut want_rows: Vec<u32> = pooled[..want].iter().map(|s| s.row).collect();
    want_rows.sort_unstable();
    want_rows
}

/// The distance of the fast path's first filter by its definition: mismatches over the
/// query's [`quant::plane_count`] largest dimensions, the [`quant::doubled_planes`]
/// largest of them counted twice.
fn weighted_distance(query: &[f32]) -> impl Fn(&[u64], &[u64]) -> u32 {
    let (planes, doubled) = (
        quant::plane_count(query.len()),
        quant::doubled_planes(query.len()),
    );
    let mut order: Vec<usize> = (0..query.len()).collect();
    order.sort_by(|&a, &b| query[b].abs().total_cmp(&query[a].abs()));
    order.truncate(planes);
    let bit = |code: &[u64], j: usize| (code[j / 64] >> (j % 64)) & 1;
    move |code, qc| {
        order
            .iter()
            .enumerate()
            .filter(|&(_, &j)| bit(code, j) != bit(qc, j))
            .map(|(t, _)| if t < doubled { 2 } else { 1 })
            .sum()
    }
}

/// At 768 dimensions the filter reads 192 planes and counts 63 of them twice (so no
/// distance exceeds 255): the candidates are still the best estimates of that pool.
#[test]
fn candidates_at_768_dimensions_follow_the_bounded_weighting() {
    let space = crate::synthetic::LatentSpace::new(768, 11);
    let index = index_of(768, 60, |i| space.vector(i));
    let query = space.query(5);
    assert_eq!(
        (quant::plane_count(768), quant::doubled_planes(768)),
        (192, 63)
    );
    let (want, limit) = (50, 5);
    let want_rows = best_of_pool(&index, &query, want, weighted_distance(&query));
    assert_candidates(&index, &query, want, limit, &want_rows);
}

/// The fast path's candidates over every row, in parallel and in sequence, are
/// `want_rows`.
fn assert_candidates(index: &Index, query: &[f32], want: usize, limit: usize, want_rows: &[u32]) {
    let blocks = index.blocks(None, 0).expect("blocks");
    for sequential in [false, true] {
        let got = index.closest_codes(0, query, &blocks, want, limit, sequential);
        let mut got_rows: Vec<u32> = got.iter().map(|&(_, r)| r).collect();
        got_rows.sort_unstable();
        assert_eq!(got_rows, want_rows, "sequential: {sequential}");
    }
}

/// Over 384 dimensions the pool is by the distance over the bit planes of the query's
/// 96 largest dimensions, a mismatch in the largest 48 counting twice: the candidates
/// are the best estimates of exactly that pool. The query is largest in dimensions
/// 0..48, then 48..96. Rows 1000..1600 (group X) disagree with it in 20 of 48..96,
/// rows 3000..3600 (group Y) in 15 of 0..48: Y is nearer by plain Hamming distance over
/// the 96 (15 against 20), X by the weighted one (20 against 30). The rest are random.
#[test]
fn candidates_over_bit_planes_are_the_best_estimates_of_the_weighted_pool() {
    // Row i's sign in dimension j: X and Y agree with the query (all +) in 0..96 but
    // for their chosen mismatches; every other sign is random.
    let zeros = |i: u64, span: Range<u64>, n: u32| {
        let (mut set, mut k) = (0u128, i | 1);
        while set.count_ones() < n {
            k = xorshift(k.wrapping_add(0x9E37));
            set |= 1 << (k % (span.end - span.start));
        }
        (span.start, set)
    };
    let index = index_of(384, 400, |i| {
        let wrong = match i {
            1000..1600 => Some(zeros(i, 48..96, 20)),
            3000..3600 => Some(zeros(i, 0..48, 15)),
            _ => None,
        };
        (0..384u64)
            .map(|j| {
                let rnd = xorshift((i * 384 + j).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
                let positive = match wrong {
                    Some(_) if j >= 96 => rnd & 1 == 1,
                    Some((at, set)) => !(j >= at && j - at < 128 && set >> (j - at) & 1 == 1),
                    None => rnd & 1 == 1,
                };
                let value = (1.0 + (rnd >> 40) as f32 / (1u64 << 24) as f32 / 100.0) / 20.0;
                if positive {
                    value
                } else {
                    -value
                }
            })
            .collect()
    });
    let mut query: Vec<f32> = (0..384)
        .map(|j| match j {
            0..48 => 3.0,
            48..96 => 2.0,
            _ => 1.0,
        })
        .collect();
    let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
    query.iter_mut().for_each(|x| *x /= norm);
    assert!(index.segments[0].codes(0).expect("codes").has_planes());
    let (want, limit) = (100, 10);
    assert_eq!(
        (quant::plane_count(384), quant::doubled_planes(384)),
        (96, 48)
    );
    let want_rows = best_of_pool(&index, &query, want, weighted_distance(&query));
    // The weighted distance keeps group X (Y would be kept by the plain one).
    assert!(
        want_rows.iter().all(|r| (1000..1600).contains(r)),
        "{want_rows:?}"
    );
    assert_candidates(&index, &query, want, limit, &want_rows);
}
