//! Correctness of the model maths of `docs/model.md` (§1–§3, §5, §6).
//!
//! What is verified
//! ----------------
//! (a) `reference_matches_fast_path` (§6.1): on small random networks
//!     (5 inputs -> 6 -> 4 hidden -> 3 readouts, 30 steps, inputs mixing 0/1 spikes,
//!     zeros and analog values, decays in (0.3, 0.95), thresholds 0.9 and 1.1) of every
//!     model kind (HetSynLIF, HetNeuLIF, HomNeuLIF, HomNeuALIF) x three topologies
//!     (feed-forward, both hidden layers recurrent, recurrent then feed-forward) x
//!     both surrogates (triangle, multi-Gaussian) x every loss (`Last`, `SoftmaxSum`
//!     with 6 skipped steps, `Mse`), the crate's potentials and spikes
//!     (`Network::forward`), its batch loss (task and regulariser parts) and every
//!     entry of every learnable gradient (`Network::loss_and_grad`) agree with a
//!     naive f64 reference implementation written in this file. Each configuration
//!     runs in three variants: batch 3 with fixed dropout masks (`Dropout::Fixed`)
//!     and the rate regulariser (the main case); batch 9 without dropout or
//!     regulariser (the crate sums per-chunk gradients of 4 samples, so this checks
//!     the reduction); batch 5 with `Dropout::Random` (the reference is given the
//!     masks of `Network::dropout_masks`, as data) and the regulariser.
//!     Tolerances: gradient entries `a` (crate) and `b` (reference) of a tensor whose
//!     largest reference entry has magnitude `M` agree when
//!     `|a - b| <= 1e-9 * max(|a|, |b|, 1e-6 * M)`: 1e-9 relative, with an absolute
//!     floor of `1e-15 * M` for entries that are cancellations far below the tensor's
//!     scale. Potentials agree to `1e-12 * max(1, |V|)`, spikes exactly, losses to
//!     1e-12 relative. Not vacuous: networks are redrawn (deterministically) until
//!     every hidden layer spikes on 5–60 % of its steps, and the test asserts that,
//!     that more than 10 % of the potentials lie within `theta` of threshold (where
//!     the triangle surrogate is non-zero), that the regulariser is a visible part of
//!     the loss, and that every reference gradient tensor has non-zero entries.
//! (b) `gradients_match_finite_differences` (§6.2): every hidden layer
//!     uses `Activation::Sigmoid { beta: 4 }` (a smooth network, true derivative), and
//!     every entry of every learnable tensor of the crate's gradient, and of the
//!     reference's gradient, matches central finite differences of the crate's batch
//!     loss, for every model kind, feed-forward and recurrent, every loss kind, with
//!     fixed dropout masks and the rate regulariser on (2838 entries). Tolerance
//!     `|g - fd| <= 1e-6 * max(|g|, |fd|, 1e-3 * M)`. The difference quotient is the
//!     fourth-order central one, `(-f(p+2h) + 8f(p+h) - 8f(p-h) + f(p-2h)) / 12h`
//!     with `h = 1e-4 * max(|p|, 1)`. The two-point quotient with `h = 1e-6` is
//!     limited by rounding of the loss (internal sums reach ~10, so errors of about
//!     `2e-15 / 1e-6 = 2e-9` absolute): under the tolerance above it was measured at
//!     up to 1.6e-6 (entries of ~1e-4 in recurrent softmax-sum tensors of scale ~1),
//!     so it cannot certify 1e-6. The fourth-order quotient (truncation O(h^4),
//!     rounding ~2e-11) was measured at <= 3e-8 with the same tolerance.
//!     The crate's gradient is also compared with the reference's (1e-9, as in (a)).
//! (c) `hetsyn_with_neuron_decays_equals_collapsed_form` (§2.3, §6.3): a
//!     `Decays::Synapse` network whose decays of neuron `j` all equal `rho_j` (input
//!     and recurrent synapses, reset `kappa`, and the per-synapse readout) produces
//!     the same spikes (exactly) and potentials (to `1e-9 * max(1, |V|)`) as the
//!     collapsed `Decays::Neuron { rho }` network, over 500 steps, feed-forward and
//!     recurrent, with and without adaptation, in f64; the spikes are also identical
//!     in f32 for these seeds, which is asserted too. `Decays::Synapse::reset` is one
//!     scalar per layer, so within a hidden layer all `rho_j` are equal (they differ
//!     between layers); readout neurons each have their own `rho_c`.
//!
//! Why this is not circular
//! ------------------------
//! The reference (`ref_forward`, `ref_backward`, `ref_loss_and_grad`) is written
//! from the equations of model.md §1–§3 only, and in a deliberately different way
//! from the crate: it stores every state of every synapse at every step (`I_ji^t`,
//! `R_jk^t`, `J_j^t`, `S_j^t`, `A_j^t`, `V_j^t`, `z_j^t`), runs time in the outer
//! loop and layers in the inner loop, and differentiates by plain reverse mode over
//! that stored graph (`dL/dI_ji^t = dL/dV_j^t + r_ji dL/dI_ji^{t+1}`,
//! `dL/dr_ji = sum_t dL/dI_ji^t I_ji^{t-1}`, `dL/dw_ji = sum_t dL/dI_ji^t x_i^t`),
//! whereas the crate keeps only per-neuron history and uses the adjoint recursions of
//! §5 (`K = lam + r K`, decay gradients multiplied by `w` once per batch). The
//! reference has its own network representation, surrogates, losses (softmax-sum
//! through the full softmax Jacobian), regulariser and dropout; from the crate it
//! takes only labels and data (`LossKind`, `Target`, `RateRegulariser`, and in one
//! variant the dropout masks). The reference is itself checked against finite
//! differences in (b), so (a) compares the crate with an independently validated
//! oracle, and (b) checks the crate against its loss alone, which involves no
//! derivative code.

#![allow(clippy::needless_range_loop, clippy::type_complexity)]

use std::time::Instant;

use hetsyn::model::network::Tape;
use hetsyn::model::Target;
use hetsyn::model::{
    Activation, Adaptation, Decays, Dropout, Float, Layer, LossKind, Network, Objective, Part, RateRegulariser,
    Spiking, Surrogate,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// ===================================================================================
// The naive reference (f64), from model.md §1–§3
// ===================================================================================

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    HetSynLif,
    HetNeuLif,
    HomNeuLif,
    HomNeuAlif,
}

const KINDS: [Kind; 4] = [Kind::HetSynLif, Kind::HetNeuLif, Kind::HomNeuLif, Kind::HomNeuAlif];

/// Spike function and `dz/dV`, written from model.md §1 and §5.1.
#[derive(Clone, Copy, Debug)]
enum Act {
    Triangle,
    MultiGaussian,
    Sigmoid(f64),
}

fn gauss(x: f64, mean: f64, std: f64) -> f64 {
    let u = (x - mean) / std;
    (-u * u / 2.0).exp() / (std * (2.0 * std::f64::consts::PI).sqrt())
}

impl Act {
    /// `z` for `x = V - theta`.
    fn z(self, x: f64) -> f64 {
        match self {
            Act::Sigmoid(beta) => 1.0 / (1.0 + (-beta * x).exp()),
            _ => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }

    /// `dz/dV` (surrogate for the step) at `x = V - theta`.
    fn dz(self, x: f64, theta: f64) -> f64 {
        match self {
            Act::Triangle => f64::max(0.0, 1.0 - (x / theta).abs()),
            Act::MultiGaussian => {
                0.5 * (1.15 * gauss(x, 0.0, 0.5) - 0.15 * gauss(x, 0.5, 3.0) - 0.15 * gauss(x, -0.5, 3.0))
            }
            Act::Sigmoid(beta) => {
                let s = self.z(x);
                beta * s * (1.0 - s)
            }
        }
    }

    fn to_crate(self) -> Activation {
        match self {
            Act::Triangle => Activation::Step(Surrogate::Triangle),
            Act::MultiGaussian => Activation::Step(Surrogate::MultiGaussian),
            Act::Sigmoid(beta) => Activation::Sigmoid { beta },
        }
    }
}

/// How the currents of a layer decay (own representation).
#[derive(Clone, Debug)]
enum Share {
    /// one decay per synapse, fixed reset decay `kappa`
    Synapse { r: Vec<f64>, q: Option<Vec<f64>>, kappa: f64 },
    /// one state per neuron: `S = rho S + W x + U z' - theta z'`
    Neuron { rho: Vec<f64>, learnable: bool },
}

#[derive(Clone, Copy, Debug)]
struct Spike {
    theta: f64,
    act: Act,
    /// `(rho_a, a)`
    adapt: Option<(f64, f64)>,
}

#[derive(Clone, Debug)]
struct RLayer {
    n: usize,
    m: usize,
    /// `[n, m]`
    w: Vec<f64>,
    /// `[n, n]`
    u: Option<Vec<f64>>,
    share: Share,
    /// `None`: leaky readout
    spike: Option<Spike>,
}

#[derive(Clone, Debug)]
struct RNet {
    layers: Vec<RLayer>,
    dt: f64,
}

impl RNet {
    fn zeros_like(&self) -> RNet {
        let z = |v: &Vec<f64>| vec![0.0; v.len()];
        RNet {
            dt: self.dt,
            layers: self
                .layers
                .iter()
                .map(|l| RLayer {
                    n: l.n,
                    m: l.m,
                    w: z(&l.w),
                    u: l.u.as_ref().map(z),
                    share: match &l.share {
                        Share::Synapse { r, q, .. } => Share::Synapse { r: z(r), q: q.as_ref().map(z), kappa: 0.0 },
                        Share::Neuron { rho, learnable } => Share::Neuron { rho: z(rho), learnable: *learnable },
                    },
                    spike: l.spike,
                })
                .collect(),
        }
    }
}

/// Every state of one layer at every step of one sample, `[T][..]`.
#[derive(Clone, Debug)]
struct Rec {
    /// input to the layer (data, or masked spikes of the layer below), `[T][m]`
    x: Vec<Vec<f64>>,
    /// `I_ji^t`, `[T][n*m]`
    i: Vec<Vec<f64>>,
    /// `R_jk^t`, `[T][n*n]`
    rc: Vec<Vec<f64>>,
    /// reset current `J_j^t`
    j: Vec<Vec<f64>>,
    /// collapsed state `S_j^t`
    s: Vec<Vec<f64>>,
    /// adaptation current `A_j^t`
    a: Vec<Vec<f64>>,
    v: Vec<Vec<f64>>,
    z: Vec<Vec<f64>>,
}

impl Rec {
    fn new(steps: usize, n: usize, m: usize) -> Rec {
        let z = |k: usize| vec![vec![0.0; k]; steps];
        Rec { x: z(m), i: z(n * m), rc: z(n * n), j: z(n), s: z(n), a: z(n), v: z(n), z: z(n) }
    }
}

/// The forward pass of model.md §1–§3, storing every state. `masks[l]` (`[T*n_l]`)
/// multiplies the spikes of hidden layer `l` fed to layer `l + 1`.
fn ref_forward(net: &RNet, input: &[f64], steps: usize, masks: Option<&Vec<Vec<f64>>>) -> Vec<Rec> {
    let mut recs: Vec<Rec> = net.layers.iter().map(|l| Rec::new(steps, l.n, l.m)).collect();
    for t in 0..steps {
        for l in 0..net.layers.len() {
            let layer = &net.layers[l];
            let (n, m) = (layer.n, layer.m);
            let x: Vec<f64> = if l == 0 {
                input[t * m..(t + 1) * m].to_vec()
            } else {
                let below = &recs[l - 1].z[t];
                match masks {
                    Some(mk) => (0..m).map(|i| below[i] * mk[l - 1][t * m + i]).collect(),
                    None => below.clone(),
                }
            };
            let rec = &mut recs[l];
            let zp: Vec<f64> = if t == 0 { vec![0.0; n] } else { rec.z[t - 1].clone() };
            let prev = |v: &Vec<Vec<f64>>, k: usize| if t == 0 { 0.0 } else { v[t - 1][k] };
            for j in 0..n {
                let mut v = 0.0;
                match &layer.share {
                    Share::Synapse { r, q, kappa } => {
                        for i in 0..m {
                            let c = r[j * m + i] * prev(&rec.i, j * m + i) + layer.w[j * m + i] * x[i];
                            rec.i[t][j * m + i] = c;
                            v += c;
                        }
                        if let (Some(u), Some(q)) = (&layer.u, q) {
                            for k in 0..n {
                                let c = q[j * n + k] * prev(&rec.rc, j * n + k) + u[j * n + k] * zp[k];
                                rec.rc[t][j * n + k] = c;
                                v += c;
                            }
                        }
                        if let Some(sp) = layer.spike {
                            let c = kappa * prev(&rec.j, j) + sp.theta * zp[j];
                            rec.j[t][j] = c;
                            v -= c;
                        }
                    }
                    Share::Neuron { rho, .. } => {
                        let mut c = rho[j] * prev(&rec.s, j);
                        for i in 0..m {
                            c += layer.w[j * m + i] * x[i];
                        }
                        if let Some(u) = &layer.u {
                            for k in 0..n {
                                c += u[j * n + k] * zp[k];
                            }
                        }
                        if let Some(sp) = layer.spike {
                            c -= sp.theta * zp[j];
                        }
                        rec.s[t][j] = c;
                        v += c;
                    }
                }
                if let Some(Spike { adapt: Some((rho_a, a)), .. }) = layer.spike {
                    let c = rho_a * prev(&rec.a, j) + a * zp[j];
                    rec.a[t][j] = c;
                    v -= c;
                }
                rec.v[t][j] = v;
                if let Some(sp) = layer.spike {
                    rec.z[t][j] = sp.act.z(v - sp.theta);
                }
            }
            rec.x[t] = x;
        }
    }
    recs
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    max + v.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
}

fn softmax(v: &[f64]) -> Vec<f64> {
    let lse = log_sum_exp(v);
    v.iter().map(|x| (x - lse).exp()).collect()
}

/// Loss of one sample and `dL/dy^t` from the readout trace `y` (`[T][C]`), model.md §3.
fn ref_sample_loss(kind: LossKind, skip: usize, y: &[Vec<f64>], target: &Target) -> (f64, Vec<Vec<f64>>) {
    let steps = y.len();
    let c_out = y[0].len();
    let mut dy = vec![vec![0.0; c_out]; steps];
    match (kind, target) {
        (LossKind::Last, Target::Class(label)) => {
            let logits = &y[steps - 1];
            let loss = log_sum_exp(logits) - logits[*label];
            let p = softmax(logits);
            for c in 0..c_out {
                dy[steps - 1][c] = p[c] - if c == *label { 1.0 } else { 0.0 };
            }
            (loss, dy)
        }
        (LossKind::SoftmaxSum, Target::Class(label)) => {
            let probs: Vec<Vec<f64>> = (skip..steps).map(|t| softmax(&y[t])).collect();
            let mut big_p = vec![0.0; c_out];
            for p in &probs {
                for c in 0..c_out {
                    big_p[c] += p[c];
                }
            }
            let loss = log_sum_exp(&big_p) - big_p[*label];
            let q = softmax(&big_p);
            let d_big_p: Vec<f64> = (0..c_out).map(|c| q[c] - if c == *label { 1.0 } else { 0.0 }).collect();
            // full Jacobian of the softmax: dp_k/dy_c = p_k (delta_kc - p_c)
            for (p, t) in probs.iter().zip(skip..steps) {
                for c in 0..c_out {
                    let mut d = 0.0;
                    for k in 0..c_out {
                        let delta = if k == c { 1.0 } else { 0.0 };
                        d += d_big_p[k] * p[k] * (delta - p[c]);
                    }
                    dy[t][c] = d;
                }
            }
            (loss, dy)
        }
        (LossKind::Mse, Target::Series(s)) => {
            let count = (steps * c_out) as f64;
            let mut loss = 0.0;
            for t in 0..steps {
                for c in 0..c_out {
                    let e = y[t][c] - s[t * c_out + c] as f64;
                    loss += e * e / count;
                    dy[t][c] = 2.0 * e / count;
                }
            }
            (loss, dy)
        }
        _ => panic!("loss does not fit target"),
    }
}

/// Adjoints of every stored state of one layer, `[T][..]`.
struct Adj {
    i: Vec<Vec<f64>>,
    rc: Vec<Vec<f64>>,
    j: Vec<Vec<f64>>,
    s: Vec<Vec<f64>>,
    a: Vec<Vec<f64>>,
    z: Vec<Vec<f64>>,
}

/// Textbook reverse mode over the stored graph of one sample; accumulates into `grad`.
/// `dy` is `dL/dy^t`, `rate[l][j]` the regulariser's `dL/dz_j^t` (constant over t).
fn ref_backward(
    net: &RNet,
    recs: &[Rec],
    dy: &[Vec<f64>],
    rate: Option<&[Vec<f64>]>,
    masks: Option<&Vec<Vec<f64>>>,
    grad: &mut RNet,
) {
    let steps = dy.len();
    let nl = net.layers.len();
    let mut adj: Vec<Adj> = net
        .layers
        .iter()
        .map(|l| {
            let z = |k: usize| vec![vec![0.0; k]; steps];
            Adj { i: z(l.n * l.m), rc: z(l.n * l.n), j: z(l.n), s: z(l.n), a: z(l.n), z: z(l.n) }
        })
        .collect();
    for t in (0..steps).rev() {
        for l in (0..nl).rev() {
            let layer = &net.layers[l];
            let rec = &recs[l];
            let g = &mut grad.layers[l];
            let (n, m) = (layer.n, layer.m);
            let ad = &mut adj[l];
            // dL/dV_j^t
            let dv: Vec<f64> = match layer.spike {
                Some(sp) => (0..n)
                    .map(|j| {
                        let mut dz = ad.z[t][j];
                        if let Some(r) = rate {
                            dz += r[l][j];
                        }
                        dz * sp.act.dz(rec.v[t][j] - sp.theta, sp.theta)
                    })
                    .collect(),
                None => dy[t].clone(),
            };
            let mut dx = vec![0.0; m];
            match (&layer.share, &mut g.share) {
                (Share::Synapse { r, q, kappa }, Share::Synapse { r: dr, q: dq, .. }) => {
                    for j in 0..n {
                        for i in 0..m {
                            let ji = j * m + i;
                            ad.i[t][ji] += dv[j];
                            let d = ad.i[t][ji];
                            g.w[ji] += d * rec.x[t][i];
                            dx[i] += layer.w[ji] * d;
                            if t > 0 {
                                dr[ji] += d * rec.i[t - 1][ji];
                                ad.i[t - 1][ji] += r[ji] * d;
                            }
                        }
                    }
                    if let (Some(u), Some(q), Some(du), Some(dq)) = (&layer.u, q, g.u.as_mut(), dq.as_mut()) {
                        for j in 0..n {
                            for k in 0..n {
                                let jk = j * n + k;
                                ad.rc[t][jk] += dv[j];
                                let d = ad.rc[t][jk];
                                if t > 0 {
                                    du[jk] += d * rec.z[t - 1][k];
                                    dq[jk] += d * rec.rc[t - 1][jk];
                                    ad.z[t - 1][k] += u[jk] * d;
                                    ad.rc[t - 1][jk] += q[jk] * d;
                                }
                            }
                        }
                    }
                    if let Some(sp) = layer.spike {
                        for j in 0..n {
                            ad.j[t][j] -= dv[j];
                            let d = ad.j[t][j];
                            if t > 0 {
                                ad.z[t - 1][j] += sp.theta * d;
                                ad.j[t - 1][j] += kappa * d;
                            }
                        }
                    }
                }
                (Share::Neuron { rho, .. }, Share::Neuron { rho: drho, .. }) => {
                    for j in 0..n {
                        ad.s[t][j] += dv[j];
                        let d = ad.s[t][j];
                        for i in 0..m {
                            g.w[j * m + i] += d * rec.x[t][i];
                            dx[i] += layer.w[j * m + i] * d;
                        }
                        if t > 0 {
                            drho[j] += d * rec.s[t - 1][j];
                            ad.s[t - 1][j] += rho[j] * d;
                            if let (Some(u), Some(du)) = (&layer.u, g.u.as_mut()) {
                                for k in 0..n {
                                    du[j * n + k] += d * rec.z[t - 1][k];
                                    ad.z[t - 1][k] += u[j * n + k] * d;
                                }
                            }
                            if let Some(sp) = layer.spike {
                                ad.z[t - 1][j] -= sp.theta * d;
                            }
                        }
                    }
                }
                _ => unreachable!(),
            }
            if let Some(Spike { adapt: Some((rho_a, a)), .. }) = layer.spike {
                for j in 0..n {
                    ad.a[t][j] -= dv[j];
                    let d = ad.a[t][j];
                    if t > 0 {
                        ad.z[t - 1][j] += a * d;
                        ad.a[t - 1][j] += rho_a * d;
                    }
                }
            }
            if l > 0 {
                let below = &mut adj[l - 1];
                for i in 0..m {
                    let mask = masks.map_or(1.0, |mk| mk[l - 1][t * m + i]);
                    below.z[t][i] += dx[i] * mask;
                }
            }
        }
    }
}

struct RefResult {
    loss: f64,
    task_loss: f64,
    reg_loss: f64,
    grad: RNet,
    recs: Vec<Vec<Rec>>,
}

/// Batch loss (mean over samples + regulariser) and its gradient, by the reference.
fn ref_loss_and_grad(
    net: &RNet,
    samples: &[(Vec<f64>, Target)],
    steps: usize,
    kind: LossKind,
    skip: usize,
    reg: Option<RateRegulariser>,
    masks: Option<&[Vec<Vec<f64>>]>,
) -> RefResult {
    let batch = samples.len();
    let recs: Vec<Vec<Rec>> =
        samples.iter().enumerate().map(|(b, s)| ref_forward(net, &s.0, steps, masks.map(|m| &m[b]))).collect();
    let nl = net.layers.len();
    let per_sample: Vec<(f64, Vec<Vec<f64>>)> =
        (0..batch).map(|b| ref_sample_loss(kind, skip, &recs[b][nl - 1].v, &samples[b].1)).collect();
    let task_loss = per_sample.iter().map(|p| p.0).sum::<f64>() / batch as f64;

    let mut reg_loss = 0.0;
    let mut rate_grad = None;
    if let Some(reg) = reg {
        let hidden = &net.layers[..nl - 1];
        let neurons: usize = hidden.iter().map(|l| l.n).sum();
        let duration = (batch * steps) as f64 * net.dt;
        let f0 = reg.target_hz;
        let mut per_layer = Vec::new();
        for (l, layer) in hidden.iter().enumerate() {
            let mut d = vec![0.0; layer.n];
            for j in 0..layer.n {
                let count: f64 = (0..batch).map(|b| (0..steps).map(|t| recs[b][l].z[t][j]).sum::<f64>()).sum();
                let rate = count / duration;
                let e = (rate - f0) / f0;
                reg_loss += reg.lambda * e * e / neurons as f64;
                // d/dz of lambda/N * e^2, with de/dz = 1 / (f0 * duration)
                d[j] = reg.lambda / neurons as f64 * 2.0 * e / (f0 * duration);
            }
            per_layer.push(d);
        }
        rate_grad = Some(per_layer);
    }

    let mut grad = net.zeros_like();
    for b in 0..batch {
        let dy: Vec<Vec<f64>> = per_sample[b].1.iter().map(|r| r.iter().map(|d| d / batch as f64).collect()).collect();
        ref_backward(net, &recs[b], &dy, rate_grad.as_deref(), masks.map(|m| &m[b]), &mut grad);
    }
    RefResult { loss: task_loss + reg_loss, task_loss, reg_loss, grad, recs }
}

// ===================================================================================
// Bridging to the crate's data structures (data only)
// ===================================================================================

fn to_crate<F: Float>(net: &RNet) -> Network<F> {
    let c = |v: &Vec<f64>| v.iter().map(|x| F::of(*x)).collect::<Vec<F>>();
    let layers = net
        .layers
        .iter()
        .map(|l| {
            Layer::new(
                l.m,
                l.n,
                c(&l.w),
                l.u.as_ref().map(c),
                match &l.share {
                    Share::Synapse { r, q, kappa } => {
                        Decays::Synapse { input: c(r), recurrent: q.as_ref().map(c), reset: F::of(*kappa) }
                    }
                    Share::Neuron { rho, learnable } => Decays::Neuron { rho: c(rho), learnable: *learnable },
                },
                l.spike.map(|s| Spiking {
                    threshold: F::of(s.theta),
                    activation: s.act.to_crate(),
                    adaptation: s.adapt.map(|(d, a)| Adaptation { decay: F::of(d), strength: F::of(a) }),
                }),
            )
        })
        .collect();
    Network::new(layers, net.dt)
}

/// The learnable tensors of a reference network (or gradient), named `l{layer}.{w,u,r,q,rho}`.
fn ref_tensors(net: &RNet) -> Vec<(String, Vec<f64>)> {
    let mut out = Vec::new();
    for (l, layer) in net.layers.iter().enumerate() {
        out.push((format!("l{l}.w"), layer.w.clone()));
        if let Some(u) = &layer.u {
            out.push((format!("l{l}.u"), u.clone()));
        }
        match &layer.share {
            Share::Synapse { r, q, .. } => {
                out.push((format!("l{l}.r"), r.clone()));
                if let Some(q) = q {
                    out.push((format!("l{l}.q"), q.clone()));
                }
            }
            Share::Neuron { rho, learnable } => {
                if *learnable {
                    out.push((format!("l{l}.rho"), rho.clone()));
                }
            }
        }
    }
    out
}

/// The same tensors read from the fields of a crate network (or gradient).
fn crate_tensors(net: &Network<f64>) -> Vec<(String, Vec<f64>)> {
    let mut out = Vec::new();
    for (l, layer) in net.layers().iter().enumerate() {
        out.push((format!("l{l}.w"), layer.input_weight().to_vec()));
        if let Some(u) = layer.recurrent_weight() {
            out.push((format!("l{l}.u"), u.to_vec()));
        }
        match layer.decays() {
            Decays::Synapse { input, recurrent, .. } => {
                out.push((format!("l{l}.r"), input.clone()));
                if let Some(q) = recurrent {
                    out.push((format!("l{l}.q"), q.clone()));
                }
            }
            Decays::Neuron { rho, learnable } => {
                if *learnable {
                    out.push((format!("l{l}.rho"), rho.clone()));
                }
            }
        }
    }
    out
}

fn crate_tensor_mut<'a>(net: &'a mut Network<f64>, name: &str) -> &'a mut [f64] {
    let (l, field) = name[1..].split_once('.').unwrap();
    let part = match field {
        "w" => Part::InputWeight,
        "u" => Part::RecurrentWeight,
        "r" | "rho" => Part::InputDecay,
        "q" => Part::RecurrentDecay,
        _ => panic!("no tensor {name}"),
    };
    let layer = net.layer_mut(l.parse::<usize>().unwrap());
    layer.params_mut().into_iter().find(|(p, _)| *p == part).unwrap_or_else(|| panic!("no tensor {name}")).1
}

// ===================================================================================
// Random problems
// ===================================================================================

const SIZES: [usize; 4] = [5, 6, 4, 3];
const STEPS: usize = 30;
const DROPOUT_P: f64 = 0.25;
const SKIP: usize = 6;

fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64, k: usize) -> Vec<f64> {
    (0..k).map(|_| rng.gen_range(lo..hi)).collect()
}

fn decay(rng: &mut ChaCha8Rng) -> f64 {
    rng.gen_range(0.3..0.95)
}

/// A random network `sizes[0] -> sizes[1] -> .. -> readout`, hidden layer `l`
/// recurrent when `recurrent[l]`.
fn random_net(kind: Kind, recurrent: &[bool], act: Act, sizes: &[usize], rng: &mut ChaCha8Rng) -> RNet {
    let hidden = sizes.len() - 2;
    let mut layers = Vec::new();
    for l in 0..=hidden {
        let (m, n) = (sizes[l], sizes[l + 1]);
        let is_readout = l == hidden;
        let gain = if l == 0 { 1.6 } else { 2.2 };
        let w: Vec<f64> = if is_readout {
            uniform(rng, -1.0, 1.0, n * m)
        } else {
            uniform(rng, -0.4, 1.0, n * m).into_iter().map(|x| x * gain / (m as f64).sqrt()).collect()
        };
        let rec = !is_readout && recurrent[l];
        let u = rec.then(|| uniform(rng, -1.0, 0.7, n * n));
        let share = match kind {
            Kind::HetSynLif => Share::Synapse {
                r: (0..n * m).map(|_| decay(rng)).collect(),
                q: rec.then(|| (0..n * n).map(|_| decay(rng)).collect()),
                kappa: decay(rng),
            },
            Kind::HetNeuLif => Share::Neuron { rho: (0..n).map(|_| decay(rng)).collect(), learnable: true },
            Kind::HomNeuLif | Kind::HomNeuAlif => Share::Neuron { rho: vec![decay(rng); n], learnable: false },
        };
        let spike = (!is_readout).then(|| Spike {
            theta: if l == 0 { 0.9 } else { 1.1 },
            act,
            adapt: (kind == Kind::HomNeuAlif).then(|| (rng.gen_range(0.8..0.95), rng.gen_range(0.1..0.4))),
        });
        layers.push(RLayer { n, m, w, u, share, spike });
    }
    RNet { layers, dt: 0.01 }
}

/// Inputs `[steps, channels]`: 0/1 spikes, zeros and analog values.
fn random_input(channels: usize, steps: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..steps * channels)
        .map(|_| {
            let u: f64 = rng.gen();
            if u < 0.3 {
                1.0
            } else if u < 0.45 {
                rng.gen_range(-0.8..1.8)
            } else {
                0.0
            }
        })
        .collect()
}

fn random_target(kind: LossKind, outputs: usize, steps: usize, rng: &mut ChaCha8Rng) -> Target {
    match kind {
        LossKind::Mse => Target::Series((0..steps * outputs).map(|_| rng.gen_range(-1.0f32..1.0)).collect()),
        _ => Target::Class(rng.gen_range(0..outputs)),
    }
}

/// Dropout masks `[sample][hidden layer][steps * size]`, entries 0 or `1/(1-p)`.
fn random_masks(net: &RNet, batch: usize, steps: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<Vec<f64>>> {
    let keep = 1.0 / (1.0 - DROPOUT_P);
    (0..batch)
        .map(|_| {
            net.layers[..net.layers.len() - 1]
                .iter()
                .map(|l| (0..steps * l.n).map(|_| if rng.gen::<f64>() < DROPOUT_P { 0.0 } else { keep }).collect())
                .collect()
        })
        .collect()
}

/// How hidden spikes fed to the next layer are dropped.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Drop {
    /// masks drawn here, passed as `Dropout::Fixed`
    Fixed,
    /// `Dropout::None`
    Off,
    /// `Dropout::Random { p, seed }`; the reference is given the masks of
    /// `Network::dropout_masks` (used as data only)
    Random(u64),
}

/// One configuration of test (a) besides model kind, topology, surrogate and loss.
#[derive(Clone, Copy, Debug)]
struct Variant {
    batch: usize,
    drop: Drop,
    regulariser: bool,
}

/// Fixed masks and regulariser, batch 3 (the main case); no dropout and no regulariser
/// with 9 samples (three gradient chunks of the crate are summed); seeded random
/// dropout with 5 samples.
const VARIANTS: [Variant; 3] = [
    Variant { batch: 3, drop: Drop::Fixed, regulariser: true },
    Variant { batch: 9, drop: Drop::Off, regulariser: false },
    Variant { batch: 5, drop: Drop::Random(77), regulariser: true },
];

const MAIN: Variant = VARIANTS[0];

struct Problem {
    net: RNet,
    samples: Vec<(Vec<f64>, Target)>,
    /// the masks the reference applies (`None`: no dropout)
    masks: Option<Vec<Vec<Vec<f64>>>>,
    drop: Drop,
    objective: Objective,
}

impl Problem {
    fn dropout(&self) -> Dropout<'_, f64> {
        match self.drop {
            Drop::Fixed => Dropout::Fixed(self.masks.as_ref().unwrap()),
            Drop::Off => Dropout::None,
            Drop::Random(seed) => Dropout::Random { p: DROPOUT_P, seed },
        }
    }

    /// The masks of sample `b` in the form `Network::forward` takes.
    fn sample_masks(&self, b: usize) -> Vec<Vec<f64>> {
        self.masks.as_ref().map(|m| m[b].clone()).unwrap_or_default()
    }
}

/// Fraction of steps on which each hidden layer spikes, over a batch of records.
fn spike_fractions(net: &RNet, recs: &[Vec<Rec>]) -> Vec<f64> {
    (0..net.layers.len() - 1)
        .map(|l| {
            let total = recs.len() * recs[0][l].z.len() * net.layers[l].n;
            recs.iter().map(|r| r[l].z.iter().flatten().sum::<f64>()).sum::<f64>() / total as f64
        })
        .collect()
}

/// A random problem. For spiking networks the draw is repeated (seeds
/// `seed * 1000 + attempt`, so still deterministic) until every hidden layer spikes on
/// 5 %–60 % of its steps, so that the comparison is not vacuous.
fn problem(kind: Kind, recurrent: &[bool], act: Act, loss: LossKind, variant: Variant, seed: u64) -> Problem {
    for attempt in 0..1000 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed * 1000 + attempt);
        let net = random_net(kind, recurrent, act, &SIZES, &mut rng);
        let samples: Vec<(Vec<f64>, Target)> = (0..variant.batch)
            .map(|_| (random_input(SIZES[0], STEPS, &mut rng), random_target(loss, SIZES[3], STEPS, &mut rng)))
            .collect();
        let masks = match variant.drop {
            Drop::Fixed => Some(random_masks(&net, variant.batch, STEPS, &mut rng)),
            Drop::Off => None,
            Drop::Random(seed) => {
                let crate_net = to_crate::<f64>(&net);
                Some((0..variant.batch).map(|b| crate_net.dropout_masks(DROPOUT_P, seed, b, STEPS)).collect())
            }
        };
        if !matches!(act, Act::Sigmoid(_)) {
            let recs: Vec<Vec<Rec>> = samples
                .iter()
                .enumerate()
                .map(|(b, (x, _))| ref_forward(&net, x, STEPS, masks.as_ref().map(|m| &m[b])))
                .collect();
            if spike_fractions(&net, &recs).iter().any(|f| !(0.05..=0.6).contains(f)) {
                continue;
            }
        }
        let objective = Objective {
            loss,
            skip_steps: SKIP,
            rate_regulariser: variant.regulariser.then_some(RateRegulariser { lambda: 0.3, target_hz: 15.0 }),
        };
        return Problem { net, samples, masks, drop: variant.drop, objective };
    }
    panic!("no active network found for seed {seed}");
}

fn crate_loss(net: &Network<f64>, p: &Problem) -> f64 {
    let samples: Vec<(&[f64], &Target)> = p.samples.iter().map(|(x, t)| (&x[..], t)).collect();
    net.loss(&samples, STEPS, &p.objective, p.dropout()).loss
}

fn crate_loss_and_grad(net: &Network<f64>, p: &Problem) -> (f64, Network<f64>) {
    let samples: Vec<(&[f64], &Target)> = p.samples.iter().map(|(x, t)| (&x[..], t)).collect();
    let (stats, grad) = net.loss_and_grad(&samples, STEPS, &p.objective, p.dropout());
    (stats.loss, grad)
}

fn reference(p: &Problem) -> RefResult {
    ref_loss_and_grad(
        &p.net,
        &p.samples,
        STEPS,
        p.objective.loss,
        p.objective.skip_steps,
        p.objective.rate_regulariser,
        p.masks.as_deref(),
    )
}

// ===================================================================================
// Comparison
// ===================================================================================

/// `|a - b| / max(|a|, |b|, floor)`.
fn rel_err(a: f64, b: f64, floor: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(floor).max(f64::MIN_POSITIVE)
}

/// Compares two lists of named tensors entry by entry; returns the largest relative
/// error (with the floor) and pushes a message per failing entry.
fn compare_tensors(
    what: &str,
    got: &[(String, Vec<f64>)],
    want: &[(String, Vec<f64>)],
    rel: f64,
    floor_of_max: f64,
    failures: &mut Vec<String>,
) -> f64 {
    let names = |v: &[(String, Vec<f64>)]| v.iter().map(|(n, t)| (n.clone(), t.len())).collect::<Vec<_>>();
    assert_eq!(names(got), names(want), "{what}: tensor names/shapes differ");
    let mut worst = 0.0f64;
    for ((name, a), (_, b)) in got.iter().zip(want) {
        let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            let e = rel_err(*x, *y, floor_of_max * scale);
            worst = worst.max(e);
            if e.is_nan() || e > rel {
                failures.push(format!(
                    "{what}: {name}[{k}]: got {x:.15e}, want {y:.15e} (rel err {e:.2e}, tensor max {scale:.3e})"
                ));
            }
        }
    }
    worst
}

fn fail_if_any(failures: &[String]) {
    if !failures.is_empty() {
        let shown: Vec<&String> = failures.iter().take(40).collect();
        panic!(
            "{} mismatches; first ones:\n{}",
            failures.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
        );
    }
}

// ===================================================================================
// (a) the fast path equals the naive reference
// ===================================================================================

const TOPOLOGIES: [[bool; 2]; 3] = [[false, false], [true, true], [true, false]];
const LOSSES: [LossKind; 3] = [LossKind::Last, LossKind::SoftmaxSum, LossKind::Mse];

#[test]
fn reference_matches_fast_path() {
    let start = Instant::now();
    let mut failures = Vec::new();
    let mut configs = 0;
    let mut seed = 1000;
    for variant in VARIANTS {
        let (mut worst_grad, mut worst_potential, mut worst_loss) = (0.0f64, 0.0f64, 0.0f64);
        for kind in KINDS {
            for recurrent in TOPOLOGIES {
                for act in [Act::Triangle, Act::MultiGaussian] {
                    for loss in LOSSES {
                        seed += 1;
                        configs += 1;
                        let p = problem(kind, &recurrent, act, loss, variant, seed);
                        let tag = format!("{kind:?} rec={recurrent:?} {act:?} {loss:?} {variant:?} seed={seed}");
                        let net = to_crate::<f64>(&p.net);
                        let r = reference(&p);

                        // forward: potentials and spikes of every layer, every sample
                        for (b, (x, _)) in p.samples.iter().enumerate() {
                            let tape: Tape<f64> = net.forward(x, STEPS, p.sample_masks(b));
                            for (l, layer) in p.net.layers.iter().enumerate() {
                                let n = layer.n;
                                for t in 0..STEPS {
                                    for j in 0..n {
                                        let (got, want) = (tape.layers[l].potential[t * n + j], r.recs[b][l].v[t][j]);
                                        let e = (got - want).abs() / want.abs().max(1.0);
                                        worst_potential = worst_potential.max(e);
                                        if e > 1e-12 {
                                            failures.push(format!(
                                                "{tag}: V sample {b} layer {l} t {t} j {j}: {got} vs {want}"
                                            ));
                                        }
                                        if layer.spike.is_some()
                                            && tape.layers[l].spikes[t * n + j] != r.recs[b][l].z[t][j]
                                        {
                                            failures.push(format!("{tag}: z sample {b} layer {l} t {t} j {j} differs"));
                                        }
                                    }
                                }
                            }
                        }

                        // not vacuous: every hidden layer spikes, not always, and is often
                        // within theta of its threshold (where the triangle is non-zero)
                        for (l, layer) in p.net.layers.iter().enumerate().filter(|(_, l)| l.spike.is_some()) {
                            let sp = layer.spike.unwrap();
                            let (mut spikes, mut live, mut total) = (0usize, 0usize, 0usize);
                            for recs in &r.recs {
                                for t in 0..STEPS {
                                    for j in 0..layer.n {
                                        total += 1;
                                        spikes += (recs[l].z[t][j] != 0.0) as usize;
                                        let x = recs[l].v[t][j] - sp.theta;
                                        live += (sp.act.dz(x, sp.theta) != 0.0 && x.abs() < sp.theta) as usize;
                                    }
                                }
                            }
                            assert!(
                                spikes >= total / 20 && spikes <= total * 3 / 5,
                                "{tag}: layer {l} spikes {spikes}/{total}"
                            );
                            assert!(
                                live > total / 10,
                                "{tag}: layer {l}: only {live}/{total} steps within theta of threshold"
                            );
                        }

                        // loss
                        let samples: Vec<(&[f64], &Target)> = p.samples.iter().map(|(x, t)| (&x[..], t)).collect();
                        let (stats, grad) = net.loss_and_grad(&samples, STEPS, &p.objective, p.dropout());
                        for (what, got, want) in [
                            ("loss", stats.loss, r.loss),
                            ("task loss", stats.task_loss, r.task_loss),
                            ("regulariser loss", stats.regulariser_loss, r.reg_loss),
                        ] {
                            let e = rel_err(got, want, 1e-300);
                            worst_loss = worst_loss.max(e);
                            if e > 1e-12 {
                                failures.push(format!("{tag}: {what} {got} vs {want}"));
                            }
                        }
                        if variant.regulariser {
                            assert!(r.reg_loss > 1e-2 * r.loss, "{tag}: regulariser too small to be tested");
                        }

                        // gradients, every entry of every learnable tensor
                        let got = crate_tensors(&grad);
                        let want = ref_tensors(&r.grad);
                        for (name, t) in &want {
                            assert!(t.iter().any(|v| *v != 0.0), "{tag}: reference gradient {name} is all zero");
                        }
                        let params = net.params();
                        assert_eq!(params.len(), want.len(), "{tag}: params() lists another set of tensors");
                        assert_eq!(
                            params.iter().map(|(_, v)| v.len()).sum::<usize>(),
                            want.iter().map(|(_, v)| v.len()).sum::<usize>(),
                            "{tag}: params() sizes"
                        );
                        worst_grad = worst_grad.max(compare_tensors(&tag, &got, &want, 1e-9, 1e-6, &mut failures));
                    }
                }
            }
        }
        println!(
            "(a) {variant:?}: max rel err gradient {worst_grad:.3e}, potential {worst_potential:.3e}, loss {worst_loss:.3e}"
        );
    }
    println!("(a) {configs} configurations in {:.2?}", start.elapsed());
    fail_if_any(&failures);
}

// ===================================================================================
// (b) smooth activation: gradients equal finite differences of the loss
// ===================================================================================

/// Relative step of the finite differences (see the module doc).
const FD_STEP: f64 = 1e-4;

#[test]
fn gradients_match_finite_differences() {
    let start = Instant::now();
    let mut failures = Vec::new();
    let (mut worst_crate, mut worst_ref, mut worst_loss, mut worst_cr) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut checked = 0usize;
    let mut seed = 2000;
    for kind in KINDS {
        for recurrent in [[false, false], [true, true]] {
            for loss in LOSSES {
                seed += 1;
                let p = problem(kind, &recurrent, Act::Sigmoid(4.0), loss, MAIN, seed);
                let tag = format!("{kind:?} rec={recurrent:?} sigmoid {loss:?} seed={seed}");
                let net = to_crate::<f64>(&p.net);
                let r = reference(&p);
                let (l0, grad) = crate_loss_and_grad(&net, &p);
                let e = rel_err(l0, r.loss, 1e-300);
                worst_loss = worst_loss.max(e);
                if e > 1e-12 {
                    failures.push(format!("{tag}: loss {l0} vs reference {}", r.loss));
                }
                let got = crate_tensors(&grad);
                let reference = ref_tensors(&r.grad);
                // central differences of the crate's loss, every entry of every tensor
                let mut fd = Vec::new();
                for (name, values) in crate_tensors(&net) {
                    let mut d = vec![0.0; values.len()];
                    for k in 0..values.len() {
                        let h = FD_STEP * values[k].abs().max(1.0);
                        let loss_at = |dx: f64| {
                            let mut moved = net.clone();
                            crate_tensor_mut(&mut moved, &name)[k] += dx;
                            crate_loss(&moved, &p)
                        };
                        // fourth-order central difference
                        d[k] =
                            (loss_at(-2.0 * h) - 8.0 * loss_at(-h) + 8.0 * loss_at(h) - loss_at(2.0 * h)) / (12.0 * h);
                        checked += 1;
                    }
                    fd.push((name, d));
                }
                for (name, t) in &fd {
                    assert!(t.iter().any(|v| v.abs() > 1e-8), "{tag}: finite-difference gradient {name} is ~zero");
                }
                worst_crate = worst_crate.max(compare_tensors(
                    &format!("{tag} crate vs fd"),
                    &got,
                    &fd,
                    1e-6,
                    1e-3,
                    &mut failures,
                ));
                worst_ref = worst_ref.max(compare_tensors(
                    &format!("{tag} reference vs fd"),
                    &reference,
                    &fd,
                    1e-6,
                    1e-3,
                    &mut failures,
                ));
                // and the smooth case of (a): crate vs reference
                worst_cr = worst_cr.max(compare_tensors(
                    &format!("{tag} crate vs reference"),
                    &got,
                    &reference,
                    1e-9,
                    1e-6,
                    &mut failures,
                ));
            }
        }
    }
    println!(
        "(b) {checked} entries: max rel err vs finite differences: crate {worst_crate:.3e}, reference {worst_ref:.3e}; crate vs reference {worst_cr:.3e}; loss vs reference {worst_loss:.3e} ({:.2?})",
        start.elapsed()
    );
    fail_if_any(&failures);
}

// ===================================================================================
// (c) per-synapse decays all equal to rho_j reduce to the collapsed form (§2)
// ===================================================================================

/// A network with `Decays::Synapse` whose decays all equal a per-neuron `rho`
/// (one value per hidden layer, one per readout neuron), its collapsed twin with
/// `Decays::Neuron { rho }`, and an input of `steps` steps. Draws are repeated (seeds
/// `seed * 1000 + attempt`) until every hidden layer spikes on 3 %–60 % of its steps.
fn twin_networks(recurrent: bool, adaptation: bool, steps: usize, seed: u64) -> (RNet, RNet, Vec<f64>) {
    for attempt in 0..1000 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed * 1000 + attempt);
        let sizes = [8usize, 10, 7, 4];
        let mut syn = Vec::new();
        let mut neu = Vec::new();
        for l in 0..3 {
            let (m, n) = (sizes[l], sizes[l + 1]);
            let readout = l == 2;
            let w: Vec<f64> = if readout {
                uniform(&mut rng, -1.0, 1.0, n * m)
            } else {
                uniform(&mut rng, -0.4, 1.0, n * m).into_iter().map(|x| x * 1.4 / (m as f64).sqrt()).collect()
            };
            let u = (!readout && recurrent).then(|| uniform(&mut rng, -0.8, 0.6, n * n));
            // kappa is one scalar per layer, so a hidden layer has one rho; readouts differ
            let rho: Vec<f64> =
                if readout { (0..n).map(|_| decay(&mut rng)).collect() } else { vec![decay(&mut rng); n] };
            let spike =
                (!readout).then(|| Spike { theta: 1.0, act: Act::Triangle, adapt: adaptation.then_some((0.9, 0.2)) });
            let per_row = |k: usize| (0..n * k).map(|idx| rho[idx / k]).collect::<Vec<f64>>();
            syn.push(RLayer {
                n,
                m,
                w: w.clone(),
                u: u.clone(),
                share: Share::Synapse { r: per_row(m), q: u.as_ref().map(|_| per_row(n)), kappa: rho[0] },
                spike,
            });
            neu.push(RLayer { n, m, w, u, share: Share::Neuron { rho, learnable: true }, spike });
        }
        let (syn, neu) = (RNet { layers: syn, dt: 1e-3 }, RNet { layers: neu, dt: 1e-3 });
        let input = random_input(sizes[0], steps, &mut rng);
        let recs = vec![ref_forward(&syn, &input, steps, None)];
        if spike_fractions(&syn, &recs).iter().all(|f| (0.03..=0.6).contains(f)) {
            return (syn, neu, input);
        }
    }
    panic!("no active network found for seed {seed}");
}

#[test]
fn hetsyn_with_neuron_decays_equals_collapsed_form() {
    let start = Instant::now();
    let steps = 500;
    let mut worst = 0.0f64;
    let mut f32_equal = 0;
    let mut cases = 0;
    for (case, (recurrent, adaptation)) in
        [(false, false), (true, false), (false, true), (true, true)].into_iter().enumerate()
    {
        let (syn, neu, input) = twin_networks(recurrent, adaptation, steps, 3000 + case as u64);
        let tag = format!("recurrent={recurrent} adaptation={adaptation}");

        // the reference says the two are the same model ...
        let (rs, rn) = (ref_forward(&syn, &input, steps, None), ref_forward(&neu, &input, steps, None));
        // ... and so must the crate
        let (a, b) = (to_crate::<f64>(&syn), to_crate::<f64>(&neu));
        let (ta, tb) = (a.forward(&input, steps, Vec::new()), b.forward(&input, steps, Vec::new()));
        for (l, layer) in syn.layers.iter().enumerate() {
            let n = layer.n;
            if layer.spike.is_some() {
                let count: f64 = ta.layers[l].spikes.iter().sum();
                assert!(
                    count > (steps * n / 50) as f64 && count < (steps * n * 3 / 4) as f64,
                    "{tag}: layer {l}: {count} spikes"
                );
                assert_eq!(ta.layers[l].spikes, tb.layers[l].spikes, "{tag}: layer {l}: spikes differ (f64)");
            }
            for t in 0..steps {
                for j in 0..n {
                    let (x, y) = (ta.layers[l].potential[t * n + j], tb.layers[l].potential[t * n + j]);
                    let e = (x - y).abs() / y.abs().max(1.0);
                    worst = worst.max(e);
                    assert!(e <= 1e-9, "{tag}: layer {l} t {t} j {j}: V {x} vs {y}");
                    assert!(
                        (x - rs[l].v[t][j]).abs() <= 1e-9 * x.abs().max(1.0),
                        "{tag}: crate vs reference (synapse form)"
                    );
                    assert!(
                        (y - rn[l].v[t][j]).abs() <= 1e-9 * y.abs().max(1.0),
                        "{tag}: crate vs reference (neuron form)"
                    );
                }
            }
        }

        // f32: the same spikes unless a potential lies within rounding of the threshold
        let input32: Vec<f32> = input.iter().map(|x| *x as f32).collect();
        let (a32, b32) = (to_crate::<f32>(&syn), to_crate::<f32>(&neu));
        let (ta32, tb32) = (a32.forward(&input32, steps, Vec::new()), b32.forward(&input32, steps, Vec::new()));
        cases += 1;
        if (0..syn.layers.len() - 1).all(|l| ta32.layers[l].spikes == tb32.layers[l].spikes) {
            f32_equal += 1;
        }
    }
    println!(
        "(c) {cases} cases x {steps} steps: spikes identical in f64, potentials max rel diff {worst:.3e}; f32 spikes identical in {f32_equal}/{cases} ({:.2?})",
        start.elapsed()
    );
    assert_eq!(f32_equal, cases, "f32 spikes differ between the two forms");
}
