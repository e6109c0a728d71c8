//! Spike function `z = H(V - theta)` and its surrogate derivatives (model.md §1, §5.1).

use serde::{Deserialize, Serialize};

use super::Float;

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
    /// whose gradients can be checked against finite differences (model.md §6.2).
    Sigmoid { beta: f64 },
}

/// `1 / sqrt(2 pi)`.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// The multi-Gaussian surrogate with its constants folded, no division:
/// `0.5 [1.15 N(x; 0, 0.5) - 0.15 N(x; 0.5, 3) - 0.15 N(x; -0.5, 3)]`
/// `= a exp(-2 x^2) - b [exp(-(x - 0.5)^2 / 18) + exp(-(x + 0.5)^2 / 18)]`
/// with `a = 1.15 / sqrt(2 pi)` and `b = 0.025 / sqrt(2 pi)`, in the float
/// type `F` with the branch-free [`Float::fast_exp`], so that a row vectorises.
#[inline(always)]
fn multi_gaussian<F: Float>(x: F) -> F {
    let (half, side) = (F::of(0.5), F::of(-1.0 / 18.0));
    let (below, above) = (x - half, x + half);
    let centre = (F::of(-2.0) * x * x).fast_exp();
    let lobes = (side * below * below).fast_exp() + (side * above * above).fast_exp();
    F::of(1.15 * INV_SQRT_2PI) * centre - F::of(0.025 * INV_SQRT_2PI) * lobes
}

impl Surrogate {
    /// `dz/dV` at `x = V - theta`.
    #[inline(always)]
    pub fn derivative(self, x: f64, theta: f64) -> f64 {
        self.derivative_in(x, theta)
    }

    /// [`Surrogate::derivative`] computed in the network's float type `F`
    /// (a row of `f32` takes half the vector instructions of `f64`).
    #[inline(always)]
    pub fn derivative_in<F: Float>(self, x: F, theta: F) -> F {
        match self {
            Surrogate::Triangle => (F::one() - (x / theta).abs()).max(F::zero()),
            Surrogate::MultiGaussian => multi_gaussian(x),
        }
    }
}

/// `H(x) = 1 if x > 0 else 0` (strict).
#[inline(always)]
fn step(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else {
        0.0
    }
}

/// `s = 1 / (1 + exp(-beta x))`.
#[inline(always)]
fn sigmoid(beta: f64, x: f64) -> f64 {
    1.0 / (1.0 + (-beta * x).exp())
}

/// `ds/dx = beta s (1 - s)`.
#[inline(always)]
fn sigmoid_derivative(beta: f64, x: f64) -> f64 {
    let s = sigmoid(beta, x);
    beta * s * (1.0 - s)
}

/// `z_j = f(V_j - theta)` over a row, `f` written as `|x| expression`.
macro_rules! map_row {
    ($potential:expr, $theta:expr, $z:expr, |$x:ident| $f:expr) => {
        for (z, v) in $z.iter_mut().zip($potential) {
            let $x = v.f64() - $theta;
            *z = F::of($f);
        }
    };
}

impl Activation {
    /// The output `z` for `x = V - theta`.
    #[inline]
    pub fn output(self, x: f64) -> f64 {
        match self {
            Activation::Step(_) => step(x),
            Activation::Sigmoid { beta } => sigmoid(beta, x),
        }
    }

    /// `dz/dV` for `x = V - theta` (surrogate for the step, exact for the sigmoid).
    #[inline]
    pub fn derivative(self, x: f64, theta: f64) -> f64 {
        match self {
            Activation::Step(s) => s.derivative(x, theta),
            Activation::Sigmoid { beta } => sigmoid_derivative(beta, x),
        }
    }

    /// `z_j = output(V_j - theta)` over a row. The choice of function is made once
    /// per row: inside the loop the compiler would evaluate both (the sigmoid's
    /// `exp` for every spiking neuron).
    #[inline(always)]
    pub fn outputs<F: Float>(self, potential: &[F], theta: f64, z: &mut [F]) {
        match self {
            Activation::Step(_) => map_row!(potential, theta, z, |x| step(x)),
            Activation::Sigmoid { beta } => map_row!(potential, theta, z, |x| sigmoid(beta, x)),
        }
    }

    /// `g_j *= derivative(V_j - theta)` over a row, the function chosen once per
    /// row and written into the loop, which vectorises (no call, no branch). The
    /// surrogates are computed in `F` ([`Surrogate::derivative_in`]).
    #[inline(always)]
    pub fn scale_by_derivatives<F: Float>(self, potential: &[F], theta: f64, g: &mut [F]) {
        let theta_f = F::of(theta);
        match self {
            Activation::Step(Surrogate::Triangle) => {
                for (g, v) in g.iter_mut().zip(potential) {
                    *g *= Surrogate::Triangle.derivative_in(*v - theta_f, theta_f);
                }
            }
            Activation::Step(Surrogate::MultiGaussian) => {
                for (g, v) in g.iter_mut().zip(potential) {
                    *g *= Surrogate::MultiGaussian.derivative_in(*v - theta_f, theta_f);
                }
            }
            Activation::Sigmoid { beta } => {
                for (g, v) in g.iter_mut().zip(potential) {
                    *g *= F::of(sigmoid_derivative(beta, v.f64() - theta));
                }
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
        // the folded constants give the formula's values
        let pdf = |x: f64, mean: f64, std: f64| (-0.5 * ((x - mean) / std).powi(2)).exp() / (std * s2pi);
        for k in -40..=40 {
            let x = f64::from(k) * 0.1;
            let want = 0.5 * (1.15 * pdf(x, 0.0, 0.5) - 0.15 * pdf(x, 0.5, 3.0) - 0.15 * pdf(x, -0.5, 3.0));
            assert!((Surrogate::MultiGaussian.derivative(x, 1.0) - want).abs() < 1e-14, "{x}");
            let single = Surrogate::MultiGaussian.derivative_in(x as f32, 1.0f32);
            assert!((f64::from(single) - want).abs() < 1e-6, "{x}: {single} against {want}");
        }
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
