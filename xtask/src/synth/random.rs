//! Seeded random weights, fast enough for 8 billion of them: a counter-based hash
//! (splitmix64) per element, turned into an approximately normal value by summing its four
//! 16-bit lanes (Irwin–Hall with n = 4: mean 0, the requested standard deviation, bounded at
//! ±3.46σ). Element `i` of a tensor depends only on the tensor's seed and `i`, so any row
//! range can be generated on any thread.

/// splitmix64's finalizer.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of tensor `name` of a model with seed `seed` (FNV-1a of the name, mixed).
pub fn tensor_seed(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h ^ mix(seed))
}

/// Standard deviation of the sum of four uniform 16-bit lanes.
const LANE_SUM_SD: f32 = 37_837.23; // 65536 * sqrt(4 / 12)
const LANE_SUM_MEAN: f32 = 131_070.0; // 4 * 65535 / 2

/// Fills `out` with elements `first..first + out.len()` of the tensor seeded `seed`:
/// `mean + sd * z` with z approximately standard normal.
pub fn fill_normal(seed: u64, first: u64, mean: f32, sd: f32, out: &mut [f32]) {
    let scale = sd / LANE_SUM_SD;
    for (i, o) in out.iter_mut().enumerate() {
        let r = mix(seed.wrapping_add((first + i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        let lanes = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48);
        *o = mean + (lanes as f32 - LANE_SUM_MEAN) * scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_has_the_requested_moments_and_is_reproducible() {
        let mut a = vec![0.0f32; 200_000];
        fill_normal(tensor_seed(7, "blk.0.ffn_up.weight"), 0, 0.0, 0.02, &mut a);
        let n = a.len() as f64;
        let mean = a.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = a
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 2e-4, "mean {mean}");
        assert!((var.sqrt() - 0.02).abs() < 2e-4, "sd {}", var.sqrt());
        assert!(a.iter().all(|x| x.abs() <= 0.02 * 3.47));
        // Any sub-range regenerates the same values.
        let mut b = vec![0.0f32; 100];
        fill_normal(
            tensor_seed(7, "blk.0.ffn_up.weight"),
            5000,
            0.0,
            0.02,
            &mut b,
        );
        assert_eq!(&a[5000..5100], &b[..]);
        // Another tensor differs.
        fill_normal(
            tensor_seed(7, "blk.1.ffn_up.weight"),
            5000,
            0.0,
            0.02,
            &mut b,
        );
        assert_ne!(&a[5000..5100], &b[..]);
    }
}
