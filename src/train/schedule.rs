//! Learning-rate schedules, expressed as a multiplicative factor of the base
//! learning rate: `lr(step) = base_lr * schedule.factor(step)`, where `step`
//! is the number of optimizer steps already taken (0-based).

use anyhow::{ensure, Result};
use std::f64::consts::PI;

/// A learning-rate schedule; see [`Schedule::factor`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// `factor = 1`.
    Constant,
    /// `factor = gamma^(floor(step / every))` (torch `StepLR`; `step` = optimizer
    /// steps already taken, 0-based). `every = 0` is treated as constant 1.
    Step { every: u64, gamma: f64 },
    /// The HetSyn authors' SHD schedule, per optimizer step over `span` steps,
    /// with `w = round(warmup_fraction * span)`:
    ///
    /// * linear warm-up, `step < w`: `factor = (step + 1) / w`;
    /// * cosine, `step >= w`: `factor = 0.5 * (1 + cos(pi * (step - w) / (span - w)))`;
    /// * once `step >= hold_fraction * span` the factor is held at its value at
    ///   `step = floor(hold_fraction * span)` (so with `hold_fraction < 1` it never reaches 0).
    ///
    /// Typical: `warmup_fraction = 0.05`, `hold_fraction = 0.95`.
    /// Edge cases: `w = 0` means no warm-up; `span = 0` is constant 1; the
    /// fractions are clamped to `[0, 1]` (NaN warm-up -> 0, NaN hold -> 1); past
    /// `span` the cosine stays at 0 rather than rising again; if the warm-up
    /// covers the whole span the factor stays 1 after it.
    WarmupCosine { span: u64, warmup_fraction: f64, hold_fraction: f64 },
}

impl Schedule {
    /// The multiplicative learning-rate factor after `step` optimizer steps
    /// (formulas on each variant). Never panics; finite and in `[0, 1]` for
    /// every schedule that passes [`Schedule::validate`], and for any
    /// `WarmupCosine` parameters at all.
    pub fn factor(&self, step: u64) -> f64 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Step { every, gamma } => {
                // every = 0: constant 1.
                match step.checked_div(every) {
                    Some(k) => gamma.powf(k as f64),
                    None => 1.0,
                }
            }
            Schedule::WarmupCosine { span, warmup_fraction, hold_fraction } => {
                warmup_cosine(step, span, warmup_fraction, hold_fraction)
            }
        }
    }

    /// Checks the parameters: `Step` needs `gamma` in `[0, 1]`; `WarmupCosine`
    /// needs both fractions in `[0, 1]`. (`every = 0` and `span = 0` are
    /// allowed and mean constant 1.)
    pub fn validate(&self) -> Result<()> {
        match *self {
            Schedule::Constant => {}
            Schedule::Step { gamma, .. } => {
                ensure!((0.0..=1.0).contains(&gamma), "step schedule: gamma must be in [0, 1], got {gamma}");
            }
            Schedule::WarmupCosine { warmup_fraction, hold_fraction, .. } => {
                ensure!(
                    (0.0..=1.0).contains(&warmup_fraction),
                    "warmup-cosine schedule: warmup_fraction must be in [0, 1], got {warmup_fraction}"
                );
                ensure!(
                    (0.0..=1.0).contains(&hold_fraction),
                    "warmup-cosine schedule: hold_fraction must be in [0, 1], got {hold_fraction}"
                );
            }
        }
        Ok(())
    }
}

/// Clamps a fraction to `[0, 1]`, mapping NaN to `nan_as`.
fn clamp_fraction(x: f64, nan_as: f64) -> f64 {
    if x.is_nan() {
        nan_as
    } else {
        x.clamp(0.0, 1.0)
    }
}

fn warmup_cosine(step: u64, span: u64, warmup_fraction: f64, hold_fraction: f64) -> f64 {
    if span == 0 {
        return 1.0;
    }
    let span_f = span as f64;
    // Both fractions are in [0, 1], so w <= span and hold <= span (the float
    // -> int casts saturate and cannot overflow).
    let w = ((clamp_fraction(warmup_fraction, 0.0) * span_f).round() as u64).min(span);
    let hold = ((clamp_fraction(hold_fraction, 1.0) * span_f).floor() as u64).min(span);
    // For integer `step`, `step >= hold_fraction * span` <=> `step >= ceil(..)`,
    // and the value between floor and ceil is the held one, so clamping the
    // step at `hold` gives exactly the documented hold.
    let s = step.min(hold);
    let f = if s < w {
        (s as f64 + 1.0) / w as f64
    } else if w >= span {
        1.0
    } else {
        let progress = ((s - w) as f64 / (span - w) as f64).min(1.0);
        0.5 * (1.0 + (PI * progress).cos())
    };
    f.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use proptest::prelude::*;

    fn shd(span: u64) -> Schedule {
        Schedule::WarmupCosine { span, warmup_fraction: 0.05, hold_fraction: 0.95 }
    }

    #[test]
    fn constant_is_one() {
        for s in [0, 1, 1000, u64::MAX] {
            assert_eq!(Schedule::Constant.factor(s), 1.0);
        }
    }

    #[test]
    fn step_lr_boundaries() {
        let sch = Schedule::Step { every: 100, gamma: 0.8 };
        assert_eq!(sch.factor(0), 1.0);
        assert_eq!(sch.factor(99), 1.0);
        assert_relative_eq!(sch.factor(100), 0.8, max_relative = 1e-15);
        assert_relative_eq!(sch.factor(199), 0.8, max_relative = 1e-15);
        assert_relative_eq!(sch.factor(200), 0.64, max_relative = 1e-15);
        assert_relative_eq!(sch.factor(250), 0.64, max_relative = 1e-15);
        assert_relative_eq!(sch.factor(300), 0.512, max_relative = 1e-15);
        // Huge step counts underflow gracefully to 0.
        assert_eq!(sch.factor(u64::MAX), 0.0);
    }

    #[test]
    fn step_every_zero_is_constant() {
        let sch = Schedule::Step { every: 0, gamma: 0.5 };
        for s in [0, 1, 100, u64::MAX] {
            assert_eq!(sch.factor(s), 1.0);
        }
    }

    #[test]
    fn warmup_is_linear_and_reaches_one() {
        let sch = shd(1000); // w = 50
        for s in 0..50u64 {
            assert_relative_eq!(sch.factor(s), (s + 1) as f64 / 50.0, max_relative = 1e-15);
        }
        assert_eq!(sch.factor(49), 1.0);
        // Cosine starts at 1 right after warm-up.
        assert_eq!(sch.factor(50), 1.0);
        assert!(sch.factor(51) < 1.0);
        // Exactly on the schedule's cosine mid-point: step w + (span - w) / 2 = 525.
        assert_relative_eq!(sch.factor(525), 0.5, epsilon = 1e-12);
    }

    #[test]
    fn warmup_rounds_fraction() {
        // 0.05 * 30 = 1.5 rounds to w = 2.
        let sch = shd(30);
        assert_eq!(sch.factor(0), 0.5);
        assert_eq!(sch.factor(1), 1.0);
        assert_eq!(sch.factor(2), 1.0);
    }

    #[test]
    fn cosine_is_non_increasing_after_warmup() {
        let sch = shd(1000);
        let mut prev = sch.factor(50);
        for s in 51..1200u64 {
            let f = sch.factor(s);
            assert!(f <= prev, "factor rose at step {s}: {prev} -> {f}");
            prev = f;
        }
    }

    #[test]
    fn hold_is_constant_and_positive() {
        let sch = shd(1000); // hold at step 950
        let held = sch.factor(950);
        let expected = 0.5 * (1.0 + (PI * 900.0 / 950.0).cos());
        assert_relative_eq!(held, expected, max_relative = 1e-12);
        assert!(held > 0.0);
        assert!(sch.factor(949) > held);
        for s in [951, 999, 1000, 5000, u64::MAX] {
            assert_eq!(sch.factor(s), held);
        }
    }

    #[test]
    fn hold_at_non_integer_point() {
        // hold_fraction * span = 9.5: steps >= 10 hold the value at step 9.
        let sch = Schedule::WarmupCosine { span: 10, warmup_fraction: 0.0, hold_fraction: 0.95 };
        let at9 = 0.5 * (1.0 + (PI * 0.9).cos());
        assert_relative_eq!(sch.factor(9), at9, max_relative = 1e-12);
        assert_eq!(sch.factor(10), sch.factor(9));
        assert_eq!(sch.factor(1_000), sch.factor(9));
        assert!(sch.factor(8) > sch.factor(9));
    }

    #[test]
    fn warmup_cosine_edge_cases() {
        // span 0: constant 1.
        let zero = Schedule::WarmupCosine { span: 0, warmup_fraction: 0.05, hold_fraction: 0.95 };
        assert_eq!(zero.factor(0), 1.0);
        assert_eq!(zero.factor(10), 1.0);
        // No warm-up: starts at 1.
        let no_warm = Schedule::WarmupCosine { span: 100, warmup_fraction: 0.0, hold_fraction: 0.95 };
        assert_eq!(no_warm.factor(0), 1.0);
        // span 1, rounding warm-up to 0.
        let one = Schedule::WarmupCosine { span: 1, warmup_fraction: 0.05, hold_fraction: 0.95 };
        assert_eq!(one.factor(0), 1.0);
        assert_eq!(one.factor(7), 1.0);
        // Warm-up over the whole span: then stays at 1.
        let all_warm = Schedule::WarmupCosine { span: 10, warmup_fraction: 1.0, hold_fraction: 1.0 };
        assert_eq!(all_warm.factor(4), 0.5);
        assert_eq!(all_warm.factor(9), 1.0);
        assert_eq!(all_warm.factor(10), 1.0);
        assert_eq!(all_warm.factor(100), 1.0);
        // No hold: reaches 0 at the end of the span and stays there.
        let no_hold = Schedule::WarmupCosine { span: 100, warmup_fraction: 0.1, hold_fraction: 1.0 };
        assert_eq!(no_hold.factor(100), 0.0);
        assert_eq!(no_hold.factor(1000), 0.0);
        // Hold inside the warm-up: held at the warm-up value.
        let early = Schedule::WarmupCosine { span: 100, warmup_fraction: 0.5, hold_fraction: 0.2 };
        assert_eq!(early.factor(20), 21.0 / 50.0);
        assert_eq!(early.factor(99), 21.0 / 50.0);
        // Hold at 0: frozen at the first value.
        let frozen = Schedule::WarmupCosine { span: 100, warmup_fraction: 0.1, hold_fraction: 0.0 };
        assert_eq!(frozen.factor(0), 0.1);
        assert_eq!(frozen.factor(50), 0.1);
        // Out-of-range and NaN fractions are clamped, not propagated.
        let wild = Schedule::WarmupCosine { span: 100, warmup_fraction: f64::NAN, hold_fraction: f64::NAN };
        assert_eq!(wild.factor(0), 1.0);
        assert_eq!(wild.factor(100), 0.0);
        let wild = Schedule::WarmupCosine { span: 100, warmup_fraction: 7.0, hold_fraction: -3.0 };
        assert_eq!(wild.factor(0), 0.01);
        // Huge span: no overflow.
        let huge = Schedule::WarmupCosine { span: u64::MAX, warmup_fraction: 0.05, hold_fraction: 0.95 };
        assert!(huge.factor(0) > 0.0 && huge.factor(u64::MAX).is_finite());
    }

    #[test]
    fn validation() {
        assert!(Schedule::Constant.validate().is_ok());
        assert!(shd(100).validate().is_ok());
        assert!(Schedule::Step { every: 0, gamma: 1.0 }.validate().is_ok());
        assert!(Schedule::Step { every: 10, gamma: 1.5 }.validate().is_err());
        assert!(Schedule::Step { every: 10, gamma: f64::NAN }.validate().is_err());
        let bad = Schedule::WarmupCosine { span: 10, warmup_fraction: -0.1, hold_fraction: 0.9 };
        assert!(bad.validate().is_err());
        let bad = Schedule::WarmupCosine { span: 10, warmup_fraction: 0.1, hold_fraction: f64::NAN };
        assert!(bad.validate().is_err());
    }

    fn valid_schedule() -> impl Strategy<Value = Schedule> {
        prop_oneof![
            Just(Schedule::Constant),
            (0u64..1000, 0.0f64..=1.0).prop_map(|(every, gamma)| Schedule::Step { every, gamma }),
            (0u64..100_000, 0.0f64..=1.0, 0.0f64..=1.0).prop_map(|(span, warmup_fraction, hold_fraction)| {
                Schedule::WarmupCosine { span, warmup_fraction, hold_fraction }
            }),
        ]
    }

    fn any_step() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..200_000, any::<u64>()]
    }

    proptest! {
        #[test]
        fn factor_is_finite_in_unit_interval(sch in valid_schedule(), step in any_step()) {
            prop_assert!(sch.validate().is_ok());
            let f = sch.factor(step);
            prop_assert!(f.is_finite() && (0.0..=1.0).contains(&f), "{:?} at {}: {}", sch, step, f);
        }

        #[test]
        fn warmup_cosine_is_robust_to_any_parameters(
            span in any::<u64>(),
            warmup_fraction in any::<f64>(),
            hold_fraction in any::<f64>(),
            step in any_step(),
        ) {
            let sch = Schedule::WarmupCosine { span, warmup_fraction, hold_fraction };
            let f = sch.factor(step);
            prop_assert!(f.is_finite() && (0.0..=1.0).contains(&f), "{:?} at {}: {}", sch, step, f);
        }

        /// Shape of the SHD-style schedule for valid parameters with a hold
        /// after the warm-up: linear warm-up, non-increasing cosine, then a
        /// constant positive hold.
        #[test]
        fn warmup_cosine_shape(
            span in 2u64..5_000,
            warmup_fraction in 0.0f64..0.5,
            hold_fraction in 0.5f64..0.999,
        ) {
            let sch = Schedule::WarmupCosine { span, warmup_fraction, hold_fraction };
            let w = (warmup_fraction * span as f64).round() as u64;
            let hold = (hold_fraction * span as f64).floor() as u64;
            for s in 0..w {
                prop_assert!((sch.factor(s) - (s + 1) as f64 / w as f64).abs() < 1e-12);
            }
            let mut prev = sch.factor(w);
            for s in w + 1..span + 10 {
                let f = sch.factor(s);
                prop_assert!(f <= prev);
                prev = f;
            }
            let held = sch.factor(hold);
            prop_assert!(held > 0.0);
            prop_assert_eq!(sch.factor(span), held);
            prop_assert_eq!(sch.factor(u64::MAX), held);
        }
    }
}
