//! 1-bit codes of a segment's vectors for the fast search path.
//!
//! Each row is stored a second time as one bit per dimension: whether the value lies above
//! the segment's mean (`center.bin`, one f32 row). Subtracting the mean does not change the
//! ranking of a query's dot products (it shifts every score of the segment by the same
//! `query · mean`), but it spreads the signs of vectors that all lean the same way, as real
//! embeddings do, so that the Hamming distance between codes follows the angle between the
//! centred vectors. The fast path scans the codes (48 bytes a row at 384 dimensions, 1/32
//! of the f32 rows), keeps the rows with the smallest distances and re-ranks them with exact
//! f32 dot products, so every score it returns is exact; only which rows are considered is
//! approximate.
//!
//! Distances between codes are the first, cheap filter. The rows that pass it are scored a
//! second time from the same codes, asymmetrically: the query stays in f32 and a code's
//! estimate is the sum of the query's values at the code's set bits ([`ByteTables`]), which
//! follows the true dot product far more closely than the distance between two 1-bit codes
//! (measured on `tp benchmark`'s vectors at 1M rows: 500 candidates by this estimate hold
//! 99.5% of the exact top 10, against 94.8% for 500 by distance), so far fewer rows need
//! their f32 vectors read.
//!
//! The first filter reads the codes dimension-major ([`bit_planes`]): only the planes of
//! the query's largest dimensions ([`plane_count`]), a quarter of the bytes at 384
//! dimensions.
//!
//! Codes are written per segment at commit time from the rows just written, so there is no
//! global build step and incremental updates keep working.

use rayon::prelude::*;
use turboprop_storage::{
    bytes_as_f32, bytes_as_u64, f32_as_bytes, join_name, space_file, u64_as_bytes, Directory,
    ReadMode, StorageError, Table, TableKind, TableWriter,
};

use crate::error::Result;

/// The codes file inside a segment folder.
pub const CODES_FILE: &str = "codes.bin";
/// The segment's mean vector (a vectors table of one row) inside a segment folder.
pub const CENTER_FILE: &str = "center.bin";
/// The codes' bit planes (the codes dimension-major) inside a segment folder.
pub const PLANES_FILE: &str = "planes.bin";

/// How many of a query's `dims` dimensions the fast path's first filter reads the bit
/// planes of: all of them up to 96, else a quarter (at least 96, at most
/// [`kernel::MAX_PLANES`](crate::kernel::MAX_PLANES)), those where the query's values are
/// largest in magnitude.
///
/// A mismatched bit costs a row's estimate `|query[j]|` ([`ByteTables`]), so the
/// dimensions where the query is near zero say little about which rows score best.
/// Measured on 1M `tp benchmark` vectors of 384 dimensions (100 queries), the 5,000 rows
/// nearest by the Hamming distance over the query's 96 largest dimensions, estimated again
/// over all 384, kept 99.5% of the exact top 10 among the best 500: as many as the distance
/// over all 384 dimensions, or over the largest 128, did, while reading a quarter of the
/// codes. The largest 64 kept 99.1%; the first 128 dimensions instead kept 81.9%, and the
/// 16 bytes of 8 dimensions with the largest sums 94.7%.
pub fn plane_count(dims: usize) -> usize {
    if dims <= 96 {
        dims
    } else {
        dims.div_ceil(4).clamp(96, crate::kernel::MAX_PLANES)
    }
}

/// How many of the [`plane_count`] planes a query reads count twice: the half where its
/// values are largest, when the planes are a subset of the dimensions (none when they are
/// all of them, so the distance is then the plain Hamming distance of the codes), and no
/// more than keeps every distance within [`kernel::MAX_PLANES`](crate::kernel::MAX_PLANES).
///
/// Measured like [`plane_count`] (1M `tp benchmark` vectors, 384 dimensions, 100 queries,
/// pools of the nearest rows estimated again over all dimensions, the best 500 kept): with
/// the largest 48 of the 96 counted twice, a pool of 3,000 kept 99.5% of the exact top 10,
/// as a pool of 5,000 did with all 96 counted once (a pool of 3,000 then kept 99.3%). The
/// distances are finer, too, so fewer rows tie at a pool's edge: about 3,400 rows in a
/// pool of 3,000 against 3,600 with all counted once.
pub fn doubled_planes(dims: usize) -> usize {
    let planes = plane_count(dims);
    match planes < dims {
        true => (planes / 2).min(crate::kernel::MAX_PLANES - planes),
        false => 0,
    }
}

/// 64-bit words per bit plane of a segment of `rows` rows.
pub fn plane_words(rows: usize) -> usize {
    rows.div_ceil(64)
}

/// 64-bit words per code of `dims` dimensions.
pub fn words(dims: usize) -> usize {
    dims.div_ceil(64)
}

/// Writes the 1-bit code of `v` relative to `center` into `out` (`words(v.len())` words):
/// bit `j` is set when `v[j] > center[j]`.
pub fn encode(v: &[f32], center: &[f32], out: &mut [u64]) {
    out.fill(0);
    for (j, (x, c)) in v.iter().zip(center).enumerate() {
        if x > c {
            out[j / 64] |= 1 << (j % 64);
        }
    }
}

/// Tables of partial sums of a query, one per byte of a code, for the asymmetric estimate
/// `Σ_{j: bit j set} query[j]` of a 1-bit code (a monotone function of the estimated dot
/// product `query · sign(row − centre)` within one segment).
#[derive(Debug, Clone)]
pub struct ByteTables {
    /// 256 sums for each byte of a code, byte `k` covering dimensions `8k..8k + 8`.
    sums: Vec<f32>,
}

impl ByteTables {
    /// The tables of `query` (`words(query.len()) * 8` tables of 256 sums).
    pub fn new(query: &[f32]) -> ByteTables {
        let bytes = words(query.len()) * 8;
        let mut sums = vec![0.0f32; bytes * 256];
        for (k, table) in sums.chunks_exact_mut(256).enumerate() {
            for v in 1..256usize {
                // The sum for `v` is that of `v` without its lowest set bit, plus that bit's
                // value.
                let low = v.trailing_zeros() as usize;
                let value = query.get(k * 8 + low).copied().unwrap_or(0.0);
                table[v] = table[v & (v - 1)] + value;
            }
        }
        ByteTables { sums }
    }

    /// The estimate of `code`: the sum of the query's values at its set bits.
    #[inline]
    pub fn score(&self, code: &[u64]) -> f32 {
        let mut acc = [0.0f32; 4];
        for (w, tables) in code.iter().zip(self.sums.chunks_exact(256 * 8)) {
            let b = w.to_le_bytes();
            for (i, &byte) in b.iter().enumerate() {
                acc[i % 4] += tables[i * 256 + usize::from(byte)];
            }
        }
        (acc[0] + acc[1]) + (acc[2] + acc[3])
    }

    /// The estimates of rows `rows` of `codes` (`words` words per code), in order (0 for
    /// a row past the end). The codes of rows picked by a filter are scattered and seldom
    /// in cache, so each is asked for [`SCORE_AHEAD`] rows before it is scored.
    pub fn score_rows(&self, codes: &[u64], words: usize, rows: &[u32]) -> Vec<f32> {
        let code = |row: u32| {
            let at = row as usize * words;
            codes.get(at..at + words).unwrap_or(&[])
        };
        for &row in rows.iter().take(SCORE_AHEAD) {
            crate::kernel::prefetch(code(row));
        }
        let mut out = Vec::with_capacity(rows.len());
        for (i, &row) in rows.iter().enumerate() {
            if let Some(&ahead) = rows.get(i + SCORE_AHEAD) {
                crate::kernel::prefetch(code(ahead));
            }
            out.push(self.score(code(row)));
        }
        out
    }
}

/// How many rows ahead [`ByteTables::score_rows`] asks for codes.
pub const SCORE_AHEAD: usize = 16;

/// Segments whose vectors hold more than this share of exact zeros get no 1-bit codes (they
/// get int8 codes instead, [`crate::sparse`]).
///
/// A 1-bit code says on which side of the mean each value lies; for a value that is zero
/// because the chunk simply lacks a feature (the built-in lexical embedder's hashed term
/// slots are mostly zero) the bit is noise, and the Hamming distance then ranks chunks by
/// how many features they have rather than by what they share with the query: measured on
/// a 1M-chunk lexical index, the fast path's top 10 had almost nothing in common with the
/// exact one. Dense embeddings (transformer models) have no zeros and code well.
pub const MAX_ZERO_SHARE: f64 = 0.2;

/// The share of exact zeros among `values`.
pub fn zero_share(values: &[f32]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let zeros: usize = values
        .par_chunks(1 << 16)
        .map(|c| c.iter().filter(|v| **v == 0.0).count())
        .sum();
    zeros as f64 / values.len() as f64
}

/// Which codes a commit wrote for a new segment's vectors of one space (what its manifest
/// entry records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WrittenCodes {
    /// `center.bin` and `codes.bin` (dense vectors).
    pub(crate) bits: bool,
    /// `codes8.bin` (sparse vectors).
    pub(crate) int8: bool,
    /// Bytes written.
    pub(crate) bytes: u64,
}

/// Writes the fast-path codes of the finished segment `segment` of `store` for its `vectors`
/// of `d` dimensions (of the additional space `space`, or the primary ones), then syncs the
/// segment folder: `center.bin` and `codes.bin` (1-bit codes; for a space `key`,
/// `center.<key>.bin` and `codes.<key>.bin`) for dense vectors, `codes8.bin`
/// (`codes8.<key>.bin`; [`crate::sparse`], int8 codes) when more than [`MAX_ZERO_SHARE`] of
/// the values are exact zeros.
pub(crate) fn write_codes(
    store: &dyn Directory,
    segment: &str,
    space: Option<&str>,
    vectors: &[f32],
    d: usize,
) -> Result<WrittenCodes> {
    if zero_share(vectors) > MAX_ZERO_SHARE {
        let bytes = crate::sparse::write_codes8(store, segment, space, vectors, d)?;
        return Ok(WrittenCodes {
            bits: false,
            int8: true,
            bytes,
        });
    }
    let bytes = write_bit_codes(store, segment, space, vectors, d)?;
    Ok(WrittenCodes {
        bits: true,
        int8: false,
        bytes,
    })
}

/// Computes and writes `center.bin` and `codes.bin` (or a space's), then syncs the segment
/// folder. Returns the bytes written.
fn write_bit_codes(
    store: &dyn Directory,
    segment: &str,
    space: Option<&str>,
    vectors: &[f32],
    d: usize,
) -> Result<u64> {
    let rows = vectors.len() / d.max(1);
    // The mean, summed in f64 in parallel blocks.
    let sums = vectors
        .par_chunks(d.max(1) * 4096)
        .map(|block| {
            let mut acc = vec![0.0f64; d];
            for row in block.chunks_exact(d.max(1)) {
                acc.iter_mut()
                    .zip(row)
                    .for_each(|(a, v)| *a += f64::from(*v));
            }
            acc
        })
        .reduce(
            || vec![0.0f64; d],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let center: Vec<f32> = sums
        .iter()
        .map(|s| (s / rows.max(1) as f64) as f32)
        .collect();
    let center_name = join_name(segment, &space_file(CENTER_FILE, space));
    let width = u32::try_from(d)
        .map_err(|_| StorageError::corrupt(store.location(segment), "too many dimensions"))?;
    let mut w = TableWriter::create(store, &center_name, TableKind::Vectors, width)?;
    w.push(f32_as_bytes(&center))?;
    w.finish(0)?;

    let wpr = words(d);
    let mut codes = vec![0u64; rows * wpr];
    codes
        .par_chunks_mut(wpr.max(1) * 4096)
        .zip(vectors.par_chunks(d.max(1) * 4096))
        .for_each(|(out, block)| {
            for (o, row) in out.chunks_exact_mut(wpr).zip(block.chunks_exact(d)) {
                encode(row, &center, o);
            }
        });
    let codes_name = join_name(segment, &space_file(CODES_FILE, space));
    let mut w = TableWriter::create(store, &codes_name, TableKind::Codes, width)?;
    for code in codes.chunks_exact(wpr.max(1)) {
        w.push(u64_as_bytes(code))?;
    }
    w.finish(0)?;

    let planes = bit_planes(&codes, rows, d);
    let planes_name = join_name(segment, &space_file(PLANES_FILE, space));
    let mut w = TableWriter::create(store, &planes_name, TableKind::Planes, width)?;
    w.push_records(u64_as_bytes(&planes))?;
    w.finish(rows as u64)?;
    store.sync_dir(segment)?;
    Ok(store.file_len(&center_name)?
        + store.file_len(&codes_name)?
        + store.file_len(&planes_name)?)
}

/// The bit planes of `rows` codes of `d` dimensions (`words(d)` words each): plane `j`
/// (words `j·W..(j + 1)·W`, `W` = [`plane_words`]`(rows)`) holds bit `j` of every code,
/// row `r` at bit `r % 64` of word `r / 64`; bits past the last row are 0.
pub fn bit_planes(codes: &[u64], rows: usize, d: usize) -> Vec<u64> {
    let (wpr, pw) = (words(d), plane_words(rows));
    // Per run of 64 rows, one word per dimension, then transposed to dimension-major.
    let mut runs = vec![0u64; pw * d];
    runs.par_chunks_mut(d.max(1))
        .zip(codes.par_chunks(64 * wpr.max(1)))
        .for_each(|(out, run)| {
            for (r, code) in run.chunks_exact(wpr.max(1)).enumerate() {
                for (j, o) in out.iter_mut().enumerate() {
                    *o |= ((code[j / 64] >> (j % 64)) & 1) << r;
                }
            }
        });
    let mut planes = vec![0u64; d * pw];
    planes
        .par_chunks_mut(pw.max(1))
        .enumerate()
        .for_each(|(j, plane)| {
            for (g, word) in plane.iter_mut().enumerate() {
                *word = runs[g * d + j];
            }
        });
    planes
}

/// A segment's codes, their bit planes if written, and mean, opened and checked against the
/// segment's shape.
#[derive(Debug)]
pub(crate) struct Codes {
    codes: Table,
    center: Table,
    planes: Option<Table>,
    words: usize,
    plane_words: usize,
}

impl Codes {
    /// Opens the codes of segment `segment` of `store` (of its additional space `space`,
    /// or of the primary vectors), which has `rows` rows of `dims` dimensions.
    pub(crate) fn open(
        store: &dyn Directory,
        segment: &str,
        space: Option<&str>,
        rows: usize,
        dims: usize,
        planes: bool,
        mode: ReadMode,
    ) -> Result<Codes> {
        let codes = Table::open(
            store,
            &join_name(segment, &space_file(CODES_FILE, space)),
            TableKind::Codes,
            mode,
        )?;
        let center = Table::open(
            store,
            &join_name(segment, &space_file(CENTER_FILE, space)),
            TableKind::Vectors,
            mode,
        )?;
        if codes.len() != rows || codes.header().width as usize != dims {
            return Err(StorageError::corrupt(
                codes.path(),
                format!(
                    "{} codes of {} bits for a segment of {rows} rows of {dims} dimensions",
                    codes.len(),
                    codes.header().width
                ),
            )
            .into());
        }
        if center.len() != 1 || center.header().width as usize != dims {
            return Err(StorageError::corrupt(
                center.path(),
                "not one row of the segment's dimensions",
            )
            .into());
        }
        if bytes_as_u64(codes.payload()).is_none() {
            return Err(
                StorageError::corrupt(codes.path(), "payload is not 8-byte aligned").into(),
            );
        }
        if bytes_as_f32(center.payload()).is_none_or(|c| c.iter().any(|v| !v.is_finite())) {
            return Err(StorageError::corrupt(center.path(), "not a finite vector").into());
        }
        let planes = match planes {
            false => None,
            true => {
                let table = Table::open(
                    store,
                    &join_name(segment, &space_file(PLANES_FILE, space)),
                    TableKind::Planes,
                    mode,
                )?;
                let header = table.header();
                if table.len() != dims * plane_words(rows)
                    || header.width as usize != dims
                    || header.extra != rows as u64
                {
                    return Err(StorageError::corrupt(
                        table.path(),
                        format!(
                            "{} words of planes of {} dimensions and {} rows for a segment \
                             of {rows} rows of {dims} dimensions",
                            table.len(),
                            header.width,
                            header.extra
                        ),
                    )
                    .into());
                }
                if bytes_as_u64(table.payload()).is_none() {
                    return Err(StorageError::corrupt(
                        table.path(),
                        "payload is not 8-byte aligned",
                    )
                    .into());
                }
                Some(table)
            }
        };
        Ok(Codes {
            codes,
            center,
            planes,
            words: words(dims),
            plane_words: plane_words(rows),
        })
    }

    /// The bit plane of dimension `j` ([`bit_planes`]), if the segment has planes.
    pub(crate) fn plane(&self, j: usize) -> Option<&[u64]> {
        let all = bytes_as_u64(self.planes.as_ref()?.payload())?;
        all.get(j * self.plane_words..(j + 1) * self.plane_words)
    }

    /// Whether the segment has bit planes.
    pub(crate) fn has_planes(&self) -> bool {
        self.planes.is_some()
    }

    /// All codes, `words` words per row.
    pub(crate) fn codes(&self) -> &[u64] {
        bytes_as_u64(self.codes.payload()).unwrap_or(&[])
    }

    /// Words per code.
    pub(crate) fn words(&self) -> usize {
        self.words
    }

    /// The segment's mean vector.
    pub(crate) fn center(&self) -> &[f32] {
        bytes_as_f32(self.center.payload()).unwrap_or(&[])
    }

    /// Checks both payloads against their checksums.
    pub(crate) fn verify(&self) -> Result<()> {
        self.codes.verify()?;
        self.center.verify()?;
        if let Some(planes) = &self.planes {
            planes.verify()?;
        }
        Ok(())
    }

    /// Fails if one of its files shrank under its mapping (see [`Index::check_intact`]).
    ///
    /// [`Index::check_intact`]: crate::Index::check_intact
    pub(crate) fn check_intact(&self) -> Result<()> {
        self.codes.check_intact()?;
        self.center.check_intact()?;
        if let Some(planes) = &self.planes {
            planes.check_intact()?;
        }
        Ok(())
    }

    /// Bytes on disk of its files.
    pub(crate) fn bytes(&self) -> u64 {
        self.codes.file_len()
            + self.center.file_len()
            + self.planes.as_ref().map_or(0, Table::file_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_follow_the_centre() {
        let mut out = [0u64; 2];
        let v: Vec<f32> = (0..70).map(|i| i as f32).collect();
        let c = vec![34.5f32; 70];
        encode(&v, &c, &mut out);
        assert_eq!(out[0], !((1u64 << 35) - 1));
        assert_eq!(out[1], (1 << 6) - 1);
    }

    #[test]
    fn planes_hold_bit_j_of_every_code() {
        let (rows, d) = (130, 70);
        let codes: Vec<u64> = (0..rows * words(d))
            .map(|i| {
                (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) & if i % 2 == 1 { 0x3f } else { !0 }
            })
            .collect();
        let planes = bit_planes(&codes, rows, d);
        let pw = plane_words(rows);
        assert_eq!(planes.len(), d * pw);
        for j in 0..d {
            for r in 0..pw * 64 {
                let got = (planes[j * pw + r / 64] >> (r % 64)) & 1;
                let want = match r < rows {
                    true => (codes[r * words(d) + j / 64] >> (j % 64)) & 1,
                    false => 0,
                };
                assert_eq!(got, want, "dimension {j} row {r}");
            }
        }
    }

    #[test]
    fn byte_tables_sum_the_query_at_set_bits() {
        let d = 150;
        let query: Vec<f32> = (0..d).map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0).collect();
        let tables = ByteTables::new(&query);
        for seed in 0..50u64 {
            let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let code: Vec<u64> = (0..words(d))
                .map(|w| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    // Bits past the last dimension stay clear, as `encode` leaves them.
                    if w == words(d) - 1 {
                        s & ((1 << (d % 64)) - 1)
                    } else {
                        s
                    }
                })
                .collect();
            let want: f64 = (0..d)
                .filter(|j| code[j / 64] >> (j % 64) & 1 == 1)
                .map(|j| f64::from(query[j]))
                .sum();
            assert!((f64::from(tables.score(&code)) - want).abs() < 1e-4);
        }
    }
}

/// The examples of the documentation above, run as tests (the module is not public API).
#[cfg(test)]
mod examples {
    use super::*;

    #[test]
    fn byte_tables_sum_the_query_at_the_set_bits() {
        let query = [0.5f32, -0.25, 0.125, 1.0];
        let tables = ByteTables::new(&query);
        let mut code = vec![0u64; words(4)];
        encode(&[1.0, 1.0, -1.0, 1.0], &[0.0; 4], &mut code); // bits 0, 1 and 3
        assert_eq!(tables.score(&code), 0.5 - 0.25 + 1.0);
    }

    #[test]
    fn planes_read_and_doubled_by_dimensions() {
        assert_eq!((plane_count(384), doubled_planes(384)), (96, 48));
        // Up to 96 dimensions every plane is read, each counted once.
        assert_eq!((plane_count(64), doubled_planes(64)), (64, 0));
        // Never a distance above 255.
        assert_eq!(plane_count(1024) + doubled_planes(1024), 255);
    }
}
