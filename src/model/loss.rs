//! Readout losses and the firing-rate regulariser (model.md §3). Losses are
//! computed in f64 whatever the network's float type.

use serde::{Deserialize, Serialize};

use super::Float;

/// The target of one sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Class index in `0..outputs`.
    Class(usize),
    /// Target values, row-major `[steps, outputs]`.
    Series(Vec<f32>),
}

/// How the readout trace `y^t` becomes a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// `P_c = sum_{t >= skip} softmax(y^t)_c`, loss `-log softmax(P)_label`,
    /// prediction `argmax P` (the authors' SHD readout; they skip 11 steps).
    SoftmaxSum,
    /// Cross-entropy of the last step's `y^T` (delayed match-to-sample).
    Last,
    /// Mean squared error between `y^t` and the target over all steps and readouts.
    Mse,
    /// The readout spikes (it is a spiking layer) and the logits are its spike
    /// counts `n_c = sum_t z_c^t`: cross-entropy of `n`, prediction `argmax n`;
    /// the gradient reaches the readout potentials through the surrogate.
    SpikeCount,
}

/// Loss of one sample and `dL/dy^t` (`[steps, outputs]`).
#[derive(Debug, Clone)]
pub struct SampleLoss<F> {
    pub loss: f64,
    /// Whether the prediction was right (classification only).
    pub correct: Option<bool>,
    pub d_output: Vec<F>,
}

/// `-log softmax(logits)_label` and its gradient `softmax - onehot`.
fn cross_entropy(logits: &[f64], label: usize) -> (f64, Vec<f64>, bool) {
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    let loss = -(logits[label] - max - sum.ln());
    let mut grad: Vec<f64> = exp.iter().map(|e| e / sum).collect();
    grad[label] -= 1.0;
    (loss, grad, argmax(logits) == label)
}

/// Index of the largest value (the first one on ties).
pub fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

fn softmax(values: &[f64]) -> Vec<f64> {
    let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = values.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

impl LossKind {
    pub fn is_classification(self) -> bool {
        !matches!(self, LossKind::Mse)
    }

    /// The class a classification readout predicts from its trace `y`
    /// (`[steps, outputs]`), as [`LossKind::sample_loss`] scores it; `None` for
    /// [`LossKind::Mse`] or an empty trace.
    pub fn predict<F: Float>(self, y: &[F], steps: usize, outputs: usize, skip: usize) -> Option<usize> {
        if steps == 0 || outputs == 0 || y.len() != steps * outputs {
            return None;
        }
        let row = |t: usize| -> Vec<f64> { y[t * outputs..(t + 1) * outputs].iter().map(|v| v.f64()).collect() };
        let sum = |rows: &mut dyn Iterator<Item = Vec<f64>>| {
            rows.fold(vec![0.0; outputs], |mut acc, r| {
                acc.iter_mut().zip(r).for_each(|(a, v)| *a += v);
                acc
            })
        };
        match self {
            LossKind::Mse => None,
            LossKind::Last => Some(argmax(&row(steps - 1))),
            LossKind::SoftmaxSum => Some(argmax(&sum(&mut (skip.min(steps)..steps).map(|t| softmax(&row(t)))))),
            LossKind::SpikeCount => Some(argmax(&sum(&mut (0..steps).map(row)))),
        }
    }

    /// Loss of one sample from its readout trace `y` (`[steps, outputs]`);
    /// `skip` initial steps are left out of the softmax sum.
    pub fn sample_loss<F: Float>(
        self,
        y: &[F],
        steps: usize,
        outputs: usize,
        skip: usize,
        target: &Target,
    ) -> SampleLoss<F> {
        assert_eq!(y.len(), steps * outputs);
        let row = |t: usize| -> Vec<f64> { y[t * outputs..(t + 1) * outputs].iter().map(|v| v.f64()).collect() };
        let mut d_output = vec![F::zero(); steps * outputs];
        match (self, target) {
            (LossKind::Last, Target::Class(label)) => {
                let (loss, grad, correct) = cross_entropy(&row(steps - 1), *label);
                for (d, g) in d_output[(steps - 1) * outputs..].iter_mut().zip(grad) {
                    *d = F::of(g);
                }
                SampleLoss { loss, correct: Some(correct), d_output }
            }
            (LossKind::SoftmaxSum, Target::Class(label)) => {
                let probs: Vec<Vec<f64>> = (skip.min(steps)..steps).map(|t| softmax(&row(t))).collect();
                let mut summed = vec![0.0; outputs];
                for p in &probs {
                    for (s, v) in summed.iter_mut().zip(p) {
                        *s += v;
                    }
                }
                let (loss, d_summed, correct) = cross_entropy(&summed, *label);
                // dL/dy_c^t = s_c (dP_c - sum_k s_k dP_k), s = softmax(y^t)
                for (p, t) in probs.iter().zip(skip.min(steps)..steps) {
                    let mean: f64 = p.iter().zip(&d_summed).map(|(s, d)| s * d).sum();
                    for c in 0..outputs {
                        d_output[t * outputs + c] = F::of(p[c] * (d_summed[c] - mean));
                    }
                }
                SampleLoss { loss, correct: Some(correct), d_output }
            }
            (LossKind::SpikeCount, Target::Class(label)) => {
                let mut counts = vec![0.0; outputs];
                for t in 0..steps {
                    for (c, z) in counts.iter_mut().zip(row(t)) {
                        *c += z;
                    }
                }
                let (loss, grad, correct) = cross_entropy(&counts, *label);
                // dL/dz_c^t = dL/dn_c at every step
                for t in 0..steps {
                    for c in 0..outputs {
                        d_output[t * outputs + c] = F::of(grad[c]);
                    }
                }
                SampleLoss { loss, correct: Some(correct), d_output }
            }
            (LossKind::Mse, Target::Series(series)) => {
                assert_eq!(series.len(), steps * outputs, "target series must be [steps, outputs]");
                let count = (steps * outputs) as f64;
                let mut loss = 0.0;
                for ((d, v), s) in d_output.iter_mut().zip(y).zip(series) {
                    let e = v.f64() - *s as f64;
                    loss += e * e / count;
                    *d = F::of(2.0 * e / count);
                }
                SampleLoss { loss, correct: None, d_output }
            }
            (kind, target) => panic!("loss {kind:?} does not fit target {target:?} (checked at config validation)"),
        }
    }
}

/// Firing-rate regulariser `lambda * mean_j ((rate_j - f0) / f0)^2` over all hidden
/// neurons, with `rate_j` in Hz averaged over the batch and time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateRegulariser {
    pub lambda: f64,
    /// `f0`, Hz
    pub target_hz: f64,
}

impl RateRegulariser {
    /// Loss and `dL/dz_j^{b,t}` (the same for every sample and step) for per-neuron
    /// spike counts summed over `samples * steps` steps of `dt` seconds.
    pub fn loss_and_grad(&self, counts: &[f64], samples: usize, steps: usize, dt: f64) -> (f64, Vec<f64>) {
        let n = counts.len().max(1) as f64;
        let duration = samples as f64 * steps as f64 * dt;
        let f0 = self.target_hz;
        let mut loss = 0.0;
        let grad = counts
            .iter()
            .map(|c| {
                let e = (c / duration - f0) / f0;
                loss += self.lambda * e * e / n;
                self.lambda * 2.0 * e / (n * f0 * duration)
            })
            .collect();
        (loss, grad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_fd(kind: LossKind, target: Target, steps: usize, outputs: usize, skip: usize) {
        let y: Vec<f64> = (0..steps * outputs).map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.3).collect();
        let got = kind.sample_loss(&y, steps, outputs, skip, &target);
        for i in 0..y.len() {
            let h = 1e-6;
            let mut a = y.clone();
            a[i] += h;
            let mut b = y.clone();
            b[i] -= h;
            let fd = (kind.sample_loss(&a, steps, outputs, skip, &target).loss
                - kind.sample_loss(&b, steps, outputs, skip, &target).loss)
                / (2.0 * h);
            assert!((fd - got.d_output[i]).abs() < 1e-7, "{kind:?} element {i}: fd {fd} vs {}", got.d_output[i]);
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_fd(LossKind::Last, Target::Class(1), 4, 3, 0);
        check_fd(LossKind::SoftmaxSum, Target::Class(2), 6, 3, 2);
        check_fd(LossKind::Mse, Target::Series((0..8).map(|i| i as f32 * 0.1).collect()), 4, 2, 0);
        check_fd(LossKind::SpikeCount, Target::Class(0), 5, 3, 0);
    }

    /// The predicted class is the one `sample_loss` counts as correct.
    #[test]
    fn predict_agrees_with_sample_loss() {
        let (steps, outputs) = (6, 4);
        for seed in 0..20u64 {
            let y: Vec<f64> =
                (0..steps * outputs).map(|i| ((i as u64 * 7 + seed * 13) % 17) as f64 * 0.4 - 3.0).collect();
            for (kind, skip) in [(LossKind::Last, 0), (LossKind::SoftmaxSum, 2), (LossKind::SpikeCount, 0)] {
                let predicted = kind.predict(&y, steps, outputs, skip).unwrap();
                for label in 0..outputs {
                    let correct = kind.sample_loss(&y, steps, outputs, skip, &Target::Class(label)).correct;
                    assert_eq!(correct, Some(label == predicted), "{kind:?} seed {seed} label {label}");
                }
            }
        }
        assert_eq!(LossKind::Mse.predict(&[0.0f64; 4], 2, 2, 0), None);
        assert_eq!(LossKind::Last.predict(&[0.0f64; 3], 2, 2, 0), None, "a trace of the wrong length");
        // the last step decides for `last`, the skipped steps do not count for `softmax_sum`
        let y = [9.0, 0.0, 0.0, 1.0];
        assert_eq!(LossKind::Last.predict(&y, 2, 2, 0), Some(1));
        assert_eq!(LossKind::SoftmaxSum.predict(&y, 2, 2, 0), Some(0));
        assert_eq!(LossKind::SoftmaxSum.predict(&y, 2, 2, 1), Some(1));
    }

    #[test]
    fn softmax_sum_skips_initial_steps() {
        // class 0 dominates only in the skipped steps
        let y = vec![9.0, 0.0, 9.0, 0.0, 0.0, 3.0];
        let l = LossKind::SoftmaxSum.sample_loss(&y, 3, 2, 2, &Target::Class(1));
        assert_eq!(l.correct, Some(true));
        assert!(l.d_output[..4].iter().all(|d: &f64| *d == 0.0));
    }

    #[test]
    fn rate_regulariser_gradient() {
        let reg = RateRegulariser { lambda: 0.5, target_hz: 10.0 };
        let counts = vec![3.0, 0.0, 12.0];
        let (_, grad) = reg.loss_and_grad(&counts, 2, 50, 0.01);
        for i in 0..3 {
            let h = 1e-5;
            let mut a = counts.clone();
            a[i] += h;
            let mut b = counts.clone();
            b[i] -= h;
            let fd = (reg.loss_and_grad(&a, 2, 50, 0.01).0 - reg.loss_and_grad(&b, 2, 50, 0.01).0) / (2.0 * h);
            assert!((fd - grad[i]).abs() < 1e-9);
        }
    }
}
