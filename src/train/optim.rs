//! Adam / AdamW over flat `f32` tensors, and global gradient-norm clipping.
//!
//! The update follows `torch.optim.Adam` / `torch.optim.AdamW` (single-tensor,
//! non-fused path) step for step. For tensor `k` with learning rate `lr`, at
//! step `t` (1-based, counted after the increment):
//!
//! ```text
//! if weight_decay != 0 && !decoupled:  g <- g + weight_decay * p          (Adam, L2 penalty)
//! if decoupled:                        p <- p * (1 - lr * weight_decay)   (AdamW, before the Adam update)
//! m <- beta1 * m + (1 - beta1) * g
//! v <- beta2 * v + (1 - beta2) * g * g
//! p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```
//!
//! which is `p -= lr * m_hat / (sqrt(v_hat) + eps)` with `m_hat = m / (1 - beta1^t)`,
//! `v_hat = v / (1 - beta2^t)`, arranged as torch arranges it. Scalar factors
//! are computed in `f64` and rounded once to `f32`; the per-element loops run
//! in `f32` in a fixed order, so results are bitwise deterministic.

use anyhow::{bail, ensure, Result};

use crate::config::{OptimizerKind, TrainConfig};

pub use crate::checkpoint::OptimizerState;

/// Adam (Kingma & Ba 2015) with optional decoupled weight decay (AdamW,
/// Loshchilov & Hutter 2019).
///
/// * `decoupled = true`: AdamW, `p -= lr * weight_decay * p` before the Adam
///   update (as `torch.optim.AdamW`).
/// * `decoupled = false`: classic Adam with an L2 penalty,
///   `g += weight_decay * p` (as `torch.optim.Adam`'s `weight_decay`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub decoupled: bool,
}

/// The optimizer of a run's `[train]` table: its Adam constants, weight decay,
/// and `optimizer = "adamw"` for decoupled weight decay.
impl From<&TrainConfig> for AdamConfig {
    fn from(train: &TrainConfig) -> AdamConfig {
        AdamConfig {
            beta1: train.beta1,
            beta2: train.beta2,
            eps: train.eps,
            weight_decay: train.weight_decay,
            decoupled: train.optimizer == OptimizerKind::Adamw,
        }
    }
}

impl Default for AdamConfig {
    /// torch's defaults for `Adam`: betas (0.9, 0.999), eps 1e-8, no weight decay.
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false }
    }
}

impl AdamConfig {
    /// Checks `0 <= beta1 < 1`, `0 <= beta2 < 1`, `eps >= 0` and
    /// `weight_decay >= 0` (all finite). `Adam` does not call this itself;
    /// whoever builds a config from user input should.
    pub fn validate(&self) -> Result<()> {
        ensure!((0.0..1.0).contains(&self.beta1), "adam: beta1 must be in [0, 1), got {}", self.beta1);
        ensure!((0.0..1.0).contains(&self.beta2), "adam: beta2 must be in [0, 1), got {}", self.beta2);
        ensure!(self.eps.is_finite() && self.eps >= 0.0, "adam: eps must be finite and >= 0, got {}", self.eps);
        ensure!(
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            "adam: weight_decay must be finite and >= 0, got {}",
            self.weight_decay
        );
        Ok(())
    }
}

/// Adam / AdamW state: one pair of moment buffers `(m, v)` per tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    config: AdamConfig,
    /// Step count and moments, as checkpoints store them.
    state: OptimizerState,
}

/// Per-tensor constants of one step, already rounded to `f32`.
#[derive(Clone, Copy)]
struct Coeffs {
    /// Multiplicative decoupled decay `1 - lr * weight_decay` (exactly 1 when off).
    decay: f32,
    /// L2 coefficient added to the gradient (`weight_decay`; only used in L2 mode).
    l2: f32,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    /// `lr / (1 - beta1^t)`.
    step_size: f32,
    /// `sqrt(1 - beta2^t)`.
    bias_correction2_sqrt: f32,
    eps: f32,
}

/// The per-element Adam update over one tensor. `L2` selects the coupled
/// weight-decay variant at compile time so the loop body stays branch-free.
#[inline(always)]
fn adam_kernel<const L2: bool>(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: Coeffs) {
    let n = p.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = if L2 { g + c.l2 * *p } else { g };
        let mi = c.beta1 * *m + c.one_minus_beta1 * g;
        let vi = c.beta2 * *v + c.one_minus_beta2 * g * g;
        *m = mi;
        *v = vi;
        let denom = vi.sqrt() / c.bias_correction2_sqrt + c.eps;
        *p = *p * c.decay - c.step_size * (mi / denom);
    }
}

impl Adam {
    /// Fresh optimizer (step 0, zero moments): one moment pair per tensor,
    /// tensor `k` of length `sizes[k]`.
    pub fn new(config: AdamConfig, sizes: &[usize]) -> Self {
        let zeros = || sizes.iter().map(|&n| vec![0.0; n]).collect();
        Self { config, state: OptimizerState { step: 0, m: zeros(), v: zeros() } }
    }

    /// One optimizer step over every tensor; tensor `k` uses learning rate
    /// `lrs[k]` (see the module docs for the exact update).
    ///
    /// Panics if the number of tensors or any tensor length disagrees with
    /// the sizes given to [`Adam::new`] (a programming error).
    pub fn step(&mut self, params: &mut [&mut [f32]], grads: &[&[f32]], lrs: &[f64]) {
        let OptimizerState { step, m: moment1, v: moment2 } = &mut self.state;
        let n_tensors = moment1.len();
        assert_eq!(params.len(), n_tensors, "Adam::step: number of parameter tensors");
        assert_eq!(grads.len(), n_tensors, "Adam::step: number of gradient tensors");
        assert_eq!(lrs.len(), n_tensors, "Adam::step: number of learning rates");
        for k in 0..n_tensors {
            let n = moment1[k].len();
            assert_eq!(params[k].len(), n, "Adam::step: length of parameter tensor {k}");
            assert_eq!(grads[k].len(), n, "Adam::step: length of gradient tensor {k}");
        }

        *step = step.saturating_add(1);
        let cfg = self.config;
        let t = *step as f64;
        let bias_correction1 = 1.0 - cfg.beta1.powf(t);
        let bias_correction2 = 1.0 - cfg.beta2.powf(t);
        let bias_correction2_sqrt = bias_correction2.sqrt() as f32;
        let l2 = !cfg.decoupled && cfg.weight_decay != 0.0;

        for k in 0..n_tensors {
            let lr = lrs[k];
            let c = Coeffs {
                decay: if cfg.decoupled { (1.0 - lr * cfg.weight_decay) as f32 } else { 1.0 },
                l2: cfg.weight_decay as f32,
                beta1: cfg.beta1 as f32,
                one_minus_beta1: (1.0 - cfg.beta1) as f32,
                beta2: cfg.beta2 as f32,
                one_minus_beta2: (1.0 - cfg.beta2) as f32,
                step_size: (lr / bias_correction1) as f32,
                bias_correction2_sqrt,
                eps: cfg.eps as f32,
            };
            let (p, g, m, v) = (&mut *params[k], grads[k], &mut moment1[k], &mut moment2[k]);
            if l2 {
                adam_kernel::<true>(p, g, m, v, c);
            } else {
                adam_kernel::<false>(p, g, m, v, c);
            }
        }
    }

    /// Number of steps taken so far (the `t` of the last bias correction).
    pub fn steps_taken(&self) -> u64 {
        self.state.step
    }

    /// The configuration this optimizer was built with.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Step count and moment buffers `(m, v)`, one entry per tensor, for checkpoints.
    pub fn state(&self) -> &OptimizerState {
        &self.state
    }

    /// Rebuilds an optimizer from checkpointed state. Errors if the number of
    /// tensors or any buffer length differs from `sizes`, or if a moment holds
    /// a non-finite value or `v` a negative one (a corrupt checkpoint).
    pub fn from_state(config: AdamConfig, state: OptimizerState, sizes: &[usize]) -> Result<Self> {
        let (m, v) = (&state.m, &state.v);
        ensure!(
            m.len() == sizes.len() && v.len() == sizes.len(),
            "adam state: expected {} tensors, got {} first moments and {} second moments",
            sizes.len(),
            m.len(),
            v.len()
        );
        for (k, ((mk, vk), &n)) in m.iter().zip(v).zip(sizes).enumerate() {
            ensure!(
                mk.len() == n && vk.len() == n,
                "adam state: tensor {k} should have {n} elements, got m: {}, v: {}",
                mk.len(),
                vk.len()
            );
            if let Some(i) = mk.iter().position(|x| !x.is_finite()) {
                bail!("adam state: tensor {k}: first moment m[{i}] = {} is not finite", mk[i]);
            }
            if let Some(i) = vk.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
                bail!("adam state: tensor {k}: second moment v[{i}] = {} is not finite and >= 0", vk[i]);
            }
        }
        Ok(Self { config, state })
    }
}

/// Scales all gradients by one common factor so that their global L2 norm is
/// at most `max_norm`, as `torch.nn.utils.clip_grad_norm_`:
///
/// ```text
/// norm = sqrt(sum_k sum_i g_ki^2)          (accumulated in f64)
/// coef = max_norm / (norm + 1e-6);  if coef < 1: g <- g * coef
/// ```
///
/// Returns `norm`, the norm before clipping. If `norm` is not finite the
/// gradients are left untouched (the caller should skip the step).
///
/// Panics if `max_norm` is negative or NaN (a programming error; validate the
/// configuration first). `max_norm = inf` disables clipping.
pub fn clip_grad_norm(grads: &mut [&mut [f32]], max_norm: f64) -> f64 {
    assert!(max_norm >= 0.0, "clip_grad_norm: max_norm must be >= 0, got {max_norm}");
    let norm = grads.iter().map(|g| sum_squares(g)).sum::<f64>().sqrt();
    if !norm.is_finite() {
        return norm;
    }
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        let coef = coef as f32;
        for g in grads.iter_mut() {
            for x in g.iter_mut() {
                *x *= coef;
            }
        }
    }
    norm
}

/// `sum x^2` in f64, with eight interleaved accumulators (a fixed order, so
/// deterministic) to break the dependency chain.
fn sum_squares(x: &[f32]) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0.0f64; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &xi) in acc.iter_mut().zip(c) {
            let xi = f64::from(xi);
            *a += xi * xi;
        }
    }
    let mut total: f64 = acc.iter().sum();
    for &xi in tail {
        let xi = f64::from(xi);
        total += xi * xi;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use proptest::prelude::*;

    #[test]
    fn the_train_table_gives_the_optimizer() {
        let text = "[model]\nkind = \"homneulif\"\ntau_init = { dist = \"constant\", value = 0.02 }\nlayers = [{ size = 2 }]\n[model.readout]\nloss = \"last\"\n[task]\nkind = \"dms\"\n[train]\noptimizer = \"adamw\"\nbeta1 = 0.8\nweight_decay = 0.01\n";
        let config = crate::config::Config::from_toml(text, &[]).unwrap();
        let adam = AdamConfig::from(&config.train);
        assert_eq!(
            (adam.beta1, adam.beta2, adam.eps, adam.weight_decay, adam.decoupled),
            (0.8, 0.999, 1e-8, 0.01, true)
        );
        let config = crate::config::Config::from_toml(&text.replace("adamw", "adam"), &[]).unwrap();
        assert!(!AdamConfig::from(&config.train).decoupled);
    }

    /// Independent f64 reference: Adam written directly from the paper's
    /// m_hat / v_hat form, with torch's two weight-decay conventions.
    struct RefAdam {
        cfg: AdamConfig,
        t: i32,
        m: Vec<Vec<f64>>,
        v: Vec<Vec<f64>>,
    }

    impl RefAdam {
        fn new(cfg: AdamConfig, sizes: &[usize]) -> Self {
            Self {
                cfg,
                t: 0,
                m: sizes.iter().map(|&n| vec![0.0; n]).collect(),
                v: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            }
        }

        fn step(&mut self, params: &mut [Vec<f64>], grads: &[Vec<f64>], lrs: &[f64]) {
            self.t += 1;
            let AdamConfig { beta1, beta2, eps, weight_decay, decoupled } = self.cfg;
            for k in 0..params.len() {
                let lr = lrs[k];
                for i in 0..params[k].len() {
                    let mut g = grads[k][i];
                    let mut p = params[k][i];
                    if decoupled {
                        p -= lr * weight_decay * p;
                    } else {
                        g += weight_decay * params[k][i];
                    }
                    let m = beta1 * self.m[k][i] + (1.0 - beta1) * g;
                    let v = beta2 * self.v[k][i] + (1.0 - beta2) * g * g;
                    self.m[k][i] = m;
                    self.v[k][i] = v;
                    let m_hat = m / (1.0 - beta1.powi(self.t));
                    let v_hat = v / (1.0 - beta2.powi(self.t));
                    p -= lr * m_hat / (v_hat.sqrt() + eps);
                    params[k][i] = p;
                }
            }
        }
    }

    /// A fixed, parameter-independent gradient sequence with mixed signs
    /// and magnitudes (including exact zeros).
    fn grad_at(step: usize, k: usize, i: usize) -> f32 {
        let x = (step * 7 + k * 13 + i * 3) as f32;
        match (step + i) % 5 {
            0 => 0.0,
            1 => (x * 0.37).sin() * 1e-3,
            _ => (x * 0.61).cos() * (1.0 + k as f32),
        }
    }

    fn init_params(sizes: &[usize]) -> Vec<Vec<f32>> {
        sizes
            .iter()
            .enumerate()
            .map(|(k, &n)| (0..n).map(|i| ((i as f32) * 0.3 - 1.0) * (k as f32 + 0.5)).collect())
            .collect()
    }

    fn step_f32(opt: &mut Adam, params: &mut [Vec<f32>], grads: &[Vec<f32>], lrs: &[f64]) {
        let mut p: Vec<&mut [f32]> = params.iter_mut().map(|p| p.as_mut_slice()).collect();
        let g: Vec<&[f32]> = grads.iter().map(|g| g.as_slice()).collect();
        opt.step(&mut p, &g, lrs);
    }

    fn grads_at(step: usize, sizes: &[usize]) -> Vec<Vec<f32>> {
        sizes.iter().enumerate().map(|(k, &n)| (0..n).map(|i| grad_at(step, k, i)).collect()).collect()
    }

    fn compare_with_reference(cfg: AdamConfig) {
        let sizes = [17usize, 5, 33];
        let lrs = [1e-2, 3e-3, 5e-2];
        let mut opt = Adam::new(cfg, &sizes);
        let mut reference = RefAdam::new(cfg, &sizes);
        let mut p32 = init_params(&sizes);
        let mut p64: Vec<Vec<f64>> = p32.iter().map(|p| p.iter().map(|&x| f64::from(x)).collect()).collect();
        for s in 0..8 {
            let g32 = grads_at(s, &sizes);
            let g64: Vec<Vec<f64>> = g32.iter().map(|g| g.iter().map(|&x| f64::from(x)).collect()).collect();
            step_f32(&mut opt, &mut p32, &g32, &lrs);
            reference.step(&mut p64, &g64, &lrs);
            for k in 0..sizes.len() {
                for i in 0..sizes[k] {
                    assert_relative_eq!(f64::from(p32[k][i]), p64[k][i], epsilon = 1e-6, max_relative = 1e-5);
                    assert_relative_eq!(
                        f64::from(opt.state().m[k][i]),
                        reference.m[k][i],
                        epsilon = 1e-7,
                        max_relative = 1e-5
                    );
                    assert_relative_eq!(
                        f64::from(opt.state().v[k][i]),
                        reference.v[k][i],
                        epsilon = 1e-9,
                        max_relative = 1e-5
                    );
                }
            }
        }
        assert_eq!(opt.steps_taken(), 8);
    }

    #[test]
    fn adam_matches_f64_reference() {
        compare_with_reference(AdamConfig::default());
    }

    #[test]
    fn adam_l2_matches_f64_reference() {
        compare_with_reference(AdamConfig { weight_decay: 0.1, ..AdamConfig::default() });
    }

    #[test]
    fn adamw_matches_f64_reference() {
        compare_with_reference(AdamConfig { weight_decay: 0.5, decoupled: true, ..AdamConfig::default() });
    }

    /// First step by hand: m_hat = g, v_hat = g^2, so p -= lr * g / (|g| + eps).
    #[test]
    fn first_step_by_hand() {
        let base = AdamConfig::default();
        let lr = 0.1;
        let run = |cfg: AdamConfig| {
            let mut opt = Adam::new(cfg, &[1]);
            let mut p = vec![vec![2.0f32]];
            step_f32(&mut opt, &mut p, &[vec![0.5]], &[lr]);
            f64::from(p[0][0])
        };
        // Plain Adam: 2 - 0.1 * 0.5 / (0.5 + 1e-8).
        assert_relative_eq!(run(base), 2.0 - 0.1 * 0.5 / (0.5 + 1e-8), max_relative = 1e-7);
        // L2 (wd 0.25): g = 0.5 + 0.25 * 2 = 1.0, p = 2 - 0.1 * 1 / (1 + 1e-8).
        let l2 = AdamConfig { weight_decay: 0.25, ..base };
        assert_relative_eq!(run(l2), 2.0 - 0.1 / (1.0 + 1e-8), max_relative = 1e-7);
        // AdamW (wd 0.25): p = 2 * (1 - 0.1 * 0.25) - 0.1 * 0.5 / (0.5 + 1e-8) = 1.85.
        let w = AdamConfig { weight_decay: 0.25, decoupled: true, ..base };
        assert_relative_eq!(run(w), 2.0 * 0.975 - 0.1 * 0.5 / (0.5 + 1e-8), max_relative = 1e-7);
    }

    /// Second step by hand, g1 = 1, g2 = -1 (beta1 0.9, beta2 0.999, eps 0):
    /// m2 = 0.09 - 0.1 = -0.01, v2 = 0.000999 + 0.001 = 0.001999,
    /// m_hat = -0.01 / 0.19, v_hat = 0.001999 / 0.001999 = 1.
    #[test]
    fn second_step_by_hand() {
        let cfg = AdamConfig { eps: 0.0, ..AdamConfig::default() };
        let mut opt = Adam::new(cfg, &[1]);
        let mut p = vec![vec![0.0f32]];
        step_f32(&mut opt, &mut p, &[vec![1.0]], &[0.1]);
        assert_relative_eq!(f64::from(p[0][0]), -0.1, max_relative = 1e-6);
        step_f32(&mut opt, &mut p, &[vec![-1.0]], &[0.1]);
        let v_hat = 0.001999 / (1.0 - 0.999f64.powi(2));
        let expected = -0.1 - 0.1 * (-0.01 / 0.19) / v_hat.sqrt();
        assert_relative_eq!(f64::from(p[0][0]), expected, max_relative = 1e-6);
    }

    #[test]
    fn per_tensor_learning_rates() {
        let cfg = AdamConfig::default();
        let sizes = [4usize, 4, 4];
        let mut opt = Adam::new(cfg, &sizes);
        let start = vec![vec![1.0f32, -2.0, 0.5, 3.0]; 3];
        let mut p = start.clone();
        let g = vec![vec![0.3f32, -1.0, 2.0, 1e-3]; 3];
        step_f32(&mut opt, &mut p, &g, &[1e-1, 1e-2, 0.0]);
        for i in 0..4 {
            let d0 = f64::from(p[0][i] - start[0][i]);
            let d1 = f64::from(p[1][i] - start[1][i]);
            // First step moves each element by ~lr * sign(g).
            assert_relative_eq!(d0.abs(), 1e-1, max_relative = 1e-4);
            assert_relative_eq!(d1.abs(), 1e-2, max_relative = 1e-4);
            assert_eq!(d0.signum(), -f64::from(g[0][i]).signum());
            assert_eq!(d0.signum(), d1.signum());
        }
        // lr = 0 leaves the tensor bit-for-bit unchanged, moments still advance.
        assert_eq!(p[2], start[2]);
        assert_eq!(opt.state().m[2], opt.state().m[0]);
    }

    #[test]
    fn adamw_lr_zero_does_not_decay() {
        let cfg = AdamConfig { weight_decay: 0.3, decoupled: true, ..AdamConfig::default() };
        let mut opt = Adam::new(cfg, &[3]);
        let mut p = vec![vec![1.0f32, -1.0, 5.0]];
        step_f32(&mut opt, &mut p, &[vec![1.0, 1.0, 1.0]], &[0.0]);
        assert_eq!(p[0], vec![1.0, -1.0, 5.0]);
    }

    #[test]
    fn step_is_bitwise_deterministic() {
        let cfg = AdamConfig { weight_decay: 0.01, decoupled: true, ..AdamConfig::default() };
        let sizes = [100usize, 7];
        let run = || {
            let mut opt = Adam::new(cfg, &sizes);
            let mut p = init_params(&sizes);
            for s in 0..20 {
                step_f32(&mut opt, &mut p, &grads_at(s, &sizes), &[1e-3, 1e-2]);
            }
            (p, opt)
        };
        let (p1, o1) = run();
        let (p2, o2) = run();
        let bits = |p: &[Vec<f32>]| -> Vec<u32> { p.iter().flatten().map(|x| x.to_bits()).collect() };
        assert_eq!(bits(&p1), bits(&p2));
        assert_eq!(bits(&o1.state().m), bits(&o2.state().m));
        assert_eq!(bits(&o1.state().v), bits(&o2.state().v));
    }

    #[test]
    #[should_panic(expected = "length of gradient tensor 1")]
    fn step_panics_on_wrong_gradient_length() {
        let mut opt = Adam::new(AdamConfig::default(), &[2, 3]);
        let mut p = vec![vec![0.0f32; 2], vec![0.0; 3]];
        step_f32(&mut opt, &mut p, &[vec![0.0; 2], vec![0.0; 4]], &[0.1, 0.1]);
    }

    #[test]
    #[should_panic(expected = "number of learning rates")]
    fn step_panics_on_wrong_lr_count() {
        let mut opt = Adam::new(AdamConfig::default(), &[2]);
        let mut p = vec![vec![0.0f32; 2]];
        step_f32(&mut opt, &mut p, &[vec![0.0; 2]], &[0.1, 0.1]);
    }

    #[test]
    #[should_panic(expected = "number of parameter tensors")]
    fn step_panics_on_wrong_tensor_count() {
        let mut opt = Adam::new(AdamConfig::default(), &[2, 2]);
        let mut p = vec![vec![0.0f32; 2]];
        step_f32(&mut opt, &mut p, &[vec![0.0; 2]], &[0.1]);
    }

    #[test]
    fn from_state_round_trip_continues_identically() {
        let cfg = AdamConfig { weight_decay: 0.05, decoupled: true, ..AdamConfig::default() };
        let sizes = [9usize, 1, 16];
        let lrs = [1e-2, 1e-1, 1e-3];
        let mut a = Adam::new(cfg, &sizes);
        let mut pa = init_params(&sizes);
        for s in 0..5 {
            step_f32(&mut a, &mut pa, &grads_at(s, &sizes), &lrs);
        }
        let mut b = Adam::from_state(cfg, a.state().clone(), &sizes).expect("valid state");
        assert_eq!(a, b);
        let mut pb = pa.clone();
        for s in 5..12 {
            let g = grads_at(s, &sizes);
            step_f32(&mut a, &mut pa, &g, &lrs);
            step_f32(&mut b, &mut pb, &g, &lrs);
        }
        assert_eq!(a, b);
        assert_eq!(b.steps_taken(), 12);
        let bits = |p: &[Vec<f32>]| -> Vec<u32> { p.iter().flatten().map(|x| x.to_bits()).collect() };
        assert_eq!(bits(&pa), bits(&pb));
    }

    #[test]
    fn from_state_rejects_bad_state() {
        let cfg = AdamConfig::default();
        let sizes = [3usize, 2];
        let ok = || (vec![vec![0.0f32; 3], vec![0.0; 2]], vec![vec![0.0f32; 3], vec![0.0; 2]]);
        let (m, v) = ok();
        assert!(Adam::from_state(cfg, OptimizerState { step: 4, m, v }, &sizes).is_ok());

        // Wrong number of tensors.
        let (m, v) = ok();
        assert!(Adam::from_state(cfg, OptimizerState { step: 4, m, v }, &[3]).is_err());
        let (mut m, v) = ok();
        m.pop();
        assert!(Adam::from_state(cfg, OptimizerState { step: 4, m, v }, &sizes).is_err());
        // Wrong tensor length in m, in v, or in sizes.
        let (mut m, v) = ok();
        m[1].push(0.0);
        assert!(Adam::from_state(cfg, OptimizerState { step: 4, m, v }, &sizes).is_err());
        let (m, mut v) = ok();
        v[0].pop();
        assert!(Adam::from_state(cfg, OptimizerState { step: 4, m, v }, &sizes).is_err());
        let (m, v) = ok();
        let err = Adam::from_state(cfg, OptimizerState { step: 4, m, v }, &[3, 5]).unwrap_err();
        assert!(err.to_string().contains("tensor 1"), "{err}");
        // Corrupt values.
        let (m, mut v) = ok();
        v[1][0] = -1.0;
        assert!(Adam::from_state(cfg, OptimizerState { step: 4, m, v }, &sizes).is_err());
        let (mut m, v) = ok();
        m[0][2] = f32::NAN;
        assert!(Adam::from_state(cfg, OptimizerState { step: 4, m, v }, &sizes).is_err());
    }

    #[test]
    fn adam_minimises_a_quadratic() {
        // f(p) = sum_i c_i (p_i - t_i)^2 with badly scaled curvatures.
        let c = [1e-2f32, 1.0, 1e2, 5.0];
        let target = [3.0f32, -1.0, 0.5, 0.0];
        let loss = |p: &[f32]| -> f64 {
            p.iter().zip(&c).zip(&target).map(|((&p, &c), &t)| f64::from(c * (p - t) * (p - t))).sum()
        };
        let mut p = vec![vec![0.0f32, 2.0, -2.0, 4.0]];
        let initial = loss(&p[0]);
        let mut opt = Adam::new(AdamConfig::default(), &[4]);
        let steps = 3000;
        for s in 0..steps {
            let g: Vec<f32> = p[0].iter().zip(&c).zip(&target).map(|((&p, &c), &t)| 2.0 * c * (p - t)).collect();
            // Linear decay so the iterate settles instead of oscillating at ~lr.
            let lr = 0.05 * (1.0 - s as f64 / steps as f64);
            step_f32(&mut opt, &mut p, &[g], &[lr]);
        }
        let last = loss(&p[0]);
        assert!(last < 1e-6 * initial, "loss {initial} -> {last}");
        for (&p, &t) in p[0].iter().zip(&target) {
            assert!((p - t).abs() < 1e-2, "p = {p}, target = {t}");
        }
    }

    #[test]
    fn clip_scales_large_gradients() {
        let mut a = vec![3.0f32, 4.0];
        let mut b = vec![12.0f32];
        let norm = clip_grad_norm(&mut [&mut a, &mut b], 6.5);
        assert_eq!(norm, 13.0);
        let coef = 6.5 / (13.0 + 1e-6);
        for (x, want) in a.iter().chain(&b).zip([3.0, 4.0, 12.0]) {
            assert_relative_eq!(f64::from(*x), want * coef, max_relative = 1e-6);
        }
        let after = sum_squares(&a) + sum_squares(&b);
        assert!(after.sqrt() <= 6.5, "norm after clipping {}", after.sqrt());
    }

    #[test]
    fn clip_leaves_small_gradients_unchanged() {
        let orig_a = vec![0.1f32, -0.2, 0.3];
        let orig_b = vec![1e-8f32; 20];
        let (mut a, mut b) = (orig_a.clone(), orig_b.clone());
        let norm = clip_grad_norm(&mut [&mut a, &mut b], 1.0);
        let expect = (0.01f64 + 0.04 + 0.09 + 20.0 * 1e-16).sqrt();
        assert_relative_eq!(norm, expect, max_relative = 1e-6);
        assert_eq!(a, orig_a);
        assert_eq!(b, orig_b);
        // Infinite max_norm never clips; empty input has norm 0.
        let mut big = vec![1e30f32; 3];
        clip_grad_norm(&mut [&mut big], f64::INFINITY);
        assert_eq!(big, vec![1e30f32; 3]);
        assert_eq!(clip_grad_norm(&mut [], 1.0), 0.0);
    }

    #[test]
    fn clip_leaves_non_finite_gradients_alone() {
        let mut a = vec![1.0f32, f32::INFINITY];
        let norm = clip_grad_norm(&mut [&mut a], 1.0);
        assert!(norm.is_infinite());
        assert_eq!(a, vec![1.0, f32::INFINITY]);
        let mut b = vec![f32::NAN, 2.0];
        assert!(clip_grad_norm(&mut [&mut b], 1.0).is_nan());
        assert_eq!(b[1], 2.0);
    }

    #[test]
    fn clip_zero_max_norm_zeroes_gradients() {
        let mut a = vec![1.0f32, -2.0];
        clip_grad_norm(&mut [&mut a], 0.0);
        assert_eq!(a, vec![0.0, -0.0]);
    }

    #[test]
    #[should_panic(expected = "max_norm")]
    fn clip_panics_on_negative_max_norm() {
        clip_grad_norm(&mut [&mut [1.0f32][..]], -1.0);
    }

    #[test]
    fn config_validation() {
        assert!(AdamConfig::default().validate().is_ok());
        let bad = [
            AdamConfig { beta1: 1.0, ..AdamConfig::default() },
            AdamConfig { beta2: -0.1, ..AdamConfig::default() },
            AdamConfig { beta2: f64::NAN, ..AdamConfig::default() },
            AdamConfig { eps: -1e-8, ..AdamConfig::default() },
            AdamConfig { weight_decay: f64::INFINITY, ..AdamConfig::default() },
        ];
        for cfg in bad {
            assert!(cfg.validate().is_err(), "{cfg:?}");
        }
    }

    proptest! {
        /// The sum-of-squares helper agrees with a plain f64 sum, and clipping
        /// brings any finite gradient set to norm <= max_norm (up to f32 rounding).
        #[test]
        fn clip_bounds_the_norm(
            a in prop::collection::vec(-1e3f32..1e3, 0..40),
            b in prop::collection::vec(-1e3f32..1e3, 0..40),
            max_norm in 1e-3f64..1e3,
        ) {
            let plain: f64 = a.iter().chain(&b).map(|&x| f64::from(x) * f64::from(x)).sum();
            let (mut a, mut b) = (a, b);
            let norm = clip_grad_norm(&mut [&mut a, &mut b], max_norm);
            prop_assert!((norm - plain.sqrt()).abs() <= 1e-12 * (1.0 + plain.sqrt()));
            let after = (sum_squares(&a) + sum_squares(&b)).sqrt();
            prop_assert!(after <= max_norm * (1.0 + 1e-6), "after {} max {}", after, max_norm);
            if norm <= max_norm {
                prop_assert!((after - norm).abs() <= 1e-12 * (1.0 + norm));
            }
        }
    }
}
