//! Embedding-like synthetic vectors for benchmarks and tests: points near a low-dimensional
//! latent space plus noise, with a shared offset, normalized. Uniform random vectors are the
//! wrong test data for search: every pair is nearly orthogonal, no neighbour stands out, and
//! any approximate method looks broken. Real embeddings cluster around a few dozen
//! directions and share a common component; this generator does both, deterministically
//! from a seed, and any row can be made on its own (so rows are generated in parallel).
//!
//! ```
//! use turboprop_index::LatentSpace;
//!
//! let space = LatentSpace::new(384, 42);
//! let v = space.vector(7);
//! assert_eq!(v.len(), 384);
//! assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
//! assert_eq!(v, space.vector(7));
//! ```

/// A seeded generator of embedding-like vectors.
#[derive(Debug, Clone)]
pub struct LatentSpace {
    dims: usize,
    latent: usize,
    noise: f32,
    seed: u64,
    /// `latent` basis vectors of `dims` values, one after the other.
    basis: Vec<f32>,
    /// The offset every vector shares.
    offset: Vec<f32>,
}

/// SplitMix64: a tiny, well-mixed counter-based generator.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn gauss(&mut self) -> f32 {
        let (u, v) = (self.unit(), self.unit());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

impl LatentSpace {
    /// Latent dimensions by default.
    pub const DEFAULT_LATENT: usize = 32;
    /// Noise by default, as a share of the signal's norm.
    pub const DEFAULT_NOISE: f32 = 0.5;

    /// A space of `dims`-dimensional vectors with the default latent size and noise.
    pub fn new(dims: usize, seed: u64) -> LatentSpace {
        Self::with_shape(dims, Self::DEFAULT_LATENT, Self::DEFAULT_NOISE, seed)
    }

    /// A space with `latent` hidden directions and `noise` (relative to the signal's norm).
    pub fn with_shape(dims: usize, latent: usize, noise: f32, seed: u64) -> LatentSpace {
        let mut rng = SplitMix(seed ^ 0x7475_7262_6F70_726F);
        let scale = 1.0 / (dims.max(1) as f32).sqrt();
        let basis = (0..latent * dims).map(|_| rng.gauss() * scale).collect();
        // A shared component about as strong as two latent directions, as in real models
        // whose vectors all lean the same way.
        let offset = (0..dims).map(|_| rng.gauss() * scale * 1.5).collect();
        LatentSpace {
            dims,
            latent,
            noise,
            seed,
            basis,
            offset,
        }
    }

    /// Vector dimensions.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Latent dimensions.
    pub fn latent(&self) -> usize {
        self.latent
    }

    /// Noise relative to the signal's norm.
    pub fn noise(&self) -> f32 {
        self.noise
    }

    /// Row `i` of the space: always the same vector for the same seed and `i`.
    pub fn vector(&self, i: u64) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dims];
        self.fill(i, &mut v);
        v
    }

    /// A query: a fresh point of the same distribution, never equal to a row.
    pub fn query(&self, i: u64) -> Vec<f32> {
        self.vector(i ^ 0xA5A5_0000_0000_0000 ^ (1 << 63))
    }

    /// Writes row `i` into `out` (`dims` values).
    pub fn fill(&self, i: u64, out: &mut [f32]) {
        let mut rng = SplitMix(self.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ i);
        out.copy_from_slice(&self.offset);
        for k in 0..self.latent {
            let w = rng.gauss();
            let b = &self.basis[k * self.dims..(k + 1) * self.dims];
            out.iter_mut().zip(b).for_each(|(x, y)| *x += w * y);
        }
        // Signal norm is about sqrt(latent); noise per value gives `noise` of that.
        let sigma = self.noise * (self.latent.max(1) as f32).sqrt() / (self.dims as f32).sqrt();
        out.iter_mut().for_each(|x| *x += sigma * rng.gauss());
        let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        out.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::dot;

    #[test]
    fn neighbours_stand_out_from_the_crowd() {
        let space = LatentSpace::new(384, 1);
        let q = space.query(0);
        let mut scores: Vec<f32> = (0..2000).map(|i| dot(&q, &space.vector(i))).collect();
        scores.sort_by(|a, b| b.total_cmp(a));
        // Not uniform noise: the best match is clearly better than the median one.
        assert!(
            scores[0] > scores[1000] + 0.2,
            "{} vs {}",
            scores[0],
            scores[1000]
        );
        assert!(scores[0] < 0.999);
    }
}
