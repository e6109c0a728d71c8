//! IEEE 754 binary16 ("half", numpy `float16`), by the `half` crate: decoding
//! stored bits, and rounding an `f64` to the nearest half value (ties to even,
//! as numpy does). The tests pin the behaviour the binning relies on.

use half::f16;

/// The value of the binary16 number with bits `bits` (exact in `f32`).
pub fn f16_bits_to_f32(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// `x` rounded to the nearest binary16 value, ties to even; overflow gives
/// ±infinity, NaN stays NaN. Rounded once, from `f64` (no double rounding
/// through `f32`); the result is exact in `f64`.
pub fn round_to_f16(x: f64) -> f64 {
    f16::from_f64(x).to_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// All finite halves in increasing order (positive, including 0 and subnormals).
    fn positive_halves() -> Vec<f64> {
        (0u16..0x7c00).map(|b| f64::from(f16_bits_to_f32(b))).collect()
    }

    #[test]
    fn known_values() {
        assert_eq!(f16_bits_to_f32(0x3c00), 1.0);
        assert_eq!(f16_bits_to_f32(0xc000), -2.0);
        assert_eq!(f16_bits_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_bits_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_bits_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_bits_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_bits_to_f32(0x7e00).is_nan());
        // numpy: float(np.float16(0.004)) == 0.0040016174316406250, float16(0.1) == 0.0999755859375
        assert_eq!(round_to_f16(0.004), 0.004_001_617_431_640_625);
        assert_eq!(round_to_f16(0.1), 0.099_975_585_937_5);
        assert_eq!(round_to_f16(0.996), 0.996_093_75);
        assert_eq!(round_to_f16(65519.99), 65504.0);
        assert_eq!(round_to_f16(65520.0), f64::INFINITY);
        assert_eq!(round_to_f16(-1e9), f64::NEG_INFINITY);
        assert!(round_to_f16(f64::NAN).is_nan());
    }

    #[test]
    fn every_half_is_fixed_and_midpoints_tie_to_even() {
        let halves = positive_halves();
        for (i, w) in halves.windows(2).enumerate() {
            let (a, b) = (w[0], w[1]);
            assert_eq!(round_to_f16(a), a);
            assert_eq!(round_to_f16(-a), -a);
            let mid = 0.5 * (a + b); // exact in f64
            let even = if i % 2 == 0 { a } else { b }; // bits i and i + 1: the even one has bit 0 clear
            assert_eq!(round_to_f16(mid), even, "midpoint of {a} and {b}");
            let below = f64::from_bits(mid.to_bits() - 1);
            let above = f64::from_bits(mid.to_bits() + 1);
            assert_eq!(round_to_f16(below), a);
            assert_eq!(round_to_f16(above), b);
        }
    }
}
