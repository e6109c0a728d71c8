//! Spike function `z = H(V - theta)` and its surrogate derivatives (model.md §1, §4).

use serde::{Deserialize, Serialize};

/// Pseudo-derivative used for `dz/dV` in the backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Surrogate {
    /// `max(0, 1 - |x / theta|)` with `x = V - theta` (pattern generation, DMS).
    Triangle,
    /// Yin et al. 2021, with `x = V - theta`:
    /// `0.5 * [1.15 N(x; 0, 0.5) - 0.15 N(x; 0.5, 3) - 0.15 N(x; -0.5, 3)]` (SHD).
    MultiGaussian,
}

/// How a spiking layer turns its potential into output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `z = H(V - theta)`, `H(x) = 1 if x > 0` (strict); backward uses the surrogate.
    Step(Surrogate),
    /// `z = sigmoid(beta (V - theta))` with its true derivative: a smooth network
    /// whose gradients can be checked against finite differences (model.md §6).
    Sigmoid { beta: f64 },
}

/// Normal density `N(x; mean, std)`.
fn normal_pdf(x: f64, mean: f64, std: f64) -> f64 {
    let u = (x - mean) / std;
    (-0.5 * u * u).exp() / (std * (2.0 * std::f64::consts::PI).sqrt())
}

impl Surrogate {
    /// `dz/dV` at `x = V - theta`.
    pub fn derivative(self, x: f64, theta: f64) -> f64 {
        match self {
            Surrogate::Triangle => (1.0 - (x / theta).abs()).max(0.0),
            Surrogate::MultiGaussian => {
                0.5 * (1.15 * normal_pdf(x, 0.0, 0.5)
                    - 0.15 * normal_pdf(x, 0.5, 3.0)
                    - 0.15 * normal_pdf(x, -0.5, 3.0))
            }
        }
    }
}

impl Activation {
    /// The output `z` for `x = V - theta`.
    #[inline]
    pub fn output(self, x: f64) -> f64 {
        match self {
            Activation::Step(_) => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Sigmoid { beta } => 1.0 / (1.0 + (-beta * x).exp()),
        }
    }

    /// `dz/dV` for `x = V - theta` (surrogate for the step, exact for the sigmoid).
    #[inline]
    pub fn derivative(self, x: f64, theta: f64) -> f64 {
        match self {
            Activation::Step(s) => s.derivative(x, theta),
            Activation::Sigmoid { beta } => {
                let s = 1.0 / (1.0 + (-beta * x).exp());
                beta * s * (1.0 - s)
            }
        }
    }

    /// True when outputs are exactly 0 or 1 (spikes).
    pub fn is_binary(self) -> bool {
        matches!(self, Activation::Step(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_is_strict() {
        let a = Activation::Step(Surrogate::Triangle);
        assert_eq!(a.output(0.0), 0.0);
        assert_eq!(a.output(1e-12), 1.0);
        assert_eq!(a.output(-1.0), 0.0);
    }

    #[test]
    fn triangle_values() {
        let s = Surrogate::Triangle;
        assert_eq!(s.derivative(0.0, 1.0), 1.0);
        assert!((s.derivative(0.5, 1.0) - 0.5).abs() < 1e-15);
        assert!((s.derivative(-0.5, 2.0) - 0.75).abs() < 1e-15);
        assert_eq!(s.derivative(1.5, 1.0), 0.0);
    }

    #[test]
    fn multi_gaussian_matches_formula() {
        // value at 0: 0.5 * (1.15 / (0.5 sqrt(2 pi)) - 2 * 0.15 * exp(-1/72) / (3 sqrt(2 pi)))
        let s2pi = (2.0 * std::f64::consts::PI).sqrt();
        let want = 0.5 * (1.15 / (0.5 * s2pi) - 0.3 * (-0.5f64 * (0.5f64 / 3.0).powi(2)).exp() / (3.0 * s2pi));
        assert!((Surrogate::MultiGaussian.derivative(0.0, 1.0) - want).abs() < 1e-14);
        // symmetric
        let a = Surrogate::MultiGaussian.derivative(0.3, 1.0);
        let b = Surrogate::MultiGaussian.derivative(-0.3, 1.0);
        assert!((a - b).abs() < 1e-15);
        // negative side lobes far from threshold
        assert!(Surrogate::MultiGaussian.derivative(3.0, 1.0) < 0.0);
    }

    #[test]
    fn sigmoid_derivative_matches_difference() {
        let a = Activation::Sigmoid { beta: 3.0 };
        let h = 1e-6;
        for &x in &[-1.0, -0.1, 0.0, 0.4, 2.0] {
            let fd = (a.output(x + h) - a.output(x - h)) / (2.0 * h);
            assert!((fd - a.derivative(x, 1.0)).abs() < 1e-8);
        }
    }
}
