//! IEEE 754 binary16 ("half", numpy `float16`): decoding stored bits (the
//! `half` crate), and rounding an `f64` to the nearest half value (ties to
//! even, as numpy does). The tests pin the behaviour the binning relies on.

use half::f16;

/// The value of the binary16 number with bits `bits` (exact in `f32`).
pub fn f16_bits_to_f32(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// `x` rounded to the nearest binary16 value, ties to even; overflow gives
/// ±infinity, NaN stays NaN. The result is returned as an `f64` (exact).
///
/// Computed exactly: `x / q` with `q` the half quantum at `x`'s binade is a
/// power-of-two scaling (exact), so `round_ties_even(x / q) * q` is the
/// correctly rounded half value. Hand-written rather than `half::f16::from_f64`
/// because that rounds some values wrongly: half 2.7 gives 0 for numbers just
/// above 2^-25 (half the smallest subnormal), which round to 2^-24
/// (`every_half_is_fixed_and_midpoints_tie_to_even` checks every half's
/// neighbourhood).
pub fn round_to_f16(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let ax = x.abs();
    // Largest half is 65504; values from the midpoint 65520 up round to 65536 = overflow.
    if ax >= 65520.0 {
        return f64::INFINITY.copysign(x);
    }
    // The quantum is 2^(e - 10) with e = floor(log2(ax)) for normal halves
    // (e >= -14) and 2^-24 for subnormal ones. The f64 biased exponent field
    // holds e + 1023 (0 for f64 subnormals, which get the 2^-24 quantum too),
    // and 2^k has biased exponent k + 1023 with a zero mantissa.
    let biased = (ax.to_bits() >> 52) & 0x7ff;
    let quantum_biased = biased.max(1023 - 14) - 10;
    let quantum = f64::from_bits(quantum_biased << 52);
    ((ax / quantum).round_ties_even() * quantum).copysign(x)
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
