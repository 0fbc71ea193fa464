//! A small seeded random source (SplitMix64): every draw of a sweep is a function of its seed,
//! the trial's number and the knob, so a resumed sweep draws what an uninterrupted one would.

/// SplitMix64.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` mixed with `streams` (trial number, knob index, …).
    pub fn new(seed: u64, streams: &[u64]) -> Rng {
        let mut rng = Rng(seed ^ 0x5851_F42D_4C95_7F2D);
        for s in streams {
            rng.0 ^= rng.next_u64().wrapping_add(*s);
        }
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n.saturating_sub(1))
    }

    /// A standard normal draw (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_streams_give_the_same_draws_and_others_differ() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, &[1, 2]).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::new(7, &[1, 2]).next_u64(),
            Rng::new(7, &[2, 1]).next_u64()
        );
        assert_ne!(Rng::new(7, &[1]).next_u64(), Rng::new(8, &[1]).next_u64());
    }

    #[test]
    fn units_stay_in_range_and_normals_are_centred() {
        let mut r = Rng::new(1, &[]);
        let draws: Vec<f64> = (0..20_000).map(|_| r.normal()).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        assert!((0..10_000).all(|_| (0.0..1.0).contains(&r.unit())));
        assert!((0..1000).all(|_| r.below(3) < 3));
    }
}
