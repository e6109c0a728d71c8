//! The network: hidden layers and the readout, and batch losses and gradients
//! with the work split over samples (rayon). Results do not depend on the number
//! of threads: samples are grouped in fixed chunks and partial gradients are
//! summed in sample order.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::layer::{Decays, Layer, LayerInput, LayerTape, Prepared};
use super::loss::{LossKind, RateRegulariser, SampleLoss, Target};
use super::Float;

/// Samples whose gradients are summed by one task before the ordered reduction.
const GRADIENT_CHUNK: usize = 4;

/// Forward records of a whole batch are kept for the regulariser's second pass
/// while they take at most this much memory; beyond it they are recomputed.
pub const TAPE_BUDGET_BYTES: usize = 64 << 20;

/// Per-neuron spike counts summed over samples, in sample order.
fn sum_counts<'a>(counts: impl Iterator<Item = &'a Vec<f64>>, neurons: usize) -> Vec<f64> {
    let mut total = vec![0.0; neurons];
    for c in counts {
        for (t, v) in total.iter_mut().zip(c) {
            *t += v;
        }
    }
    total
}

/// What a batch keeps of each sample: its loss, whether it was classified
/// correctly, its spike counts per hidden neuron and the caller's figures.
type Summary<T> = (f64, Option<bool>, Vec<f64>, T);

/// A stack of layers: `layers[..L-1]` hidden, `layers[L-1]` the leaky readout.
#[derive(Debug, Clone, PartialEq)]
pub struct Network<F> {
    pub layers: Vec<Layer<F>>,
    /// Step length, seconds (for firing rates).
    pub dt: f64,
}

/// What the loss is made of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    pub loss: LossKind,
    /// Initial steps left out of the softmax-sum readout.
    pub skip_steps: usize,
    pub rate_regulariser: Option<RateRegulariser>,
}

/// Dropout on hidden spikes fed to the next layer: `x^t = z^t * m^t / (1 - p)`.
#[derive(Debug, Clone, Copy)]
pub enum Dropout<'a, F> {
    None,
    /// Masks drawn from stream `b` of a ChaCha8 generator seeded with `seed` for sample `b`.
    Random {
        p: f64,
        seed: u64,
    },
    /// Given masks (already scaled): `[sample][hidden layer][steps * size]`.
    Fixed(&'a [Vec<Vec<F>>]),
}

/// Losses and counts of one batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchStats {
    /// Mean task loss over samples plus the regulariser.
    pub loss: f64,
    pub task_loss: f64,
    pub regulariser_loss: f64,
    pub samples: usize,
    /// Correct predictions (classification).
    pub correct: usize,
    /// Mean firing rate of all hidden neurons, Hz.
    pub mean_rate_hz: f64,
}

impl BatchStats {
    pub fn accuracy(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.correct as f64 / self.samples as f64
        }
    }
}

/// One sample as the network reads it: its input over all steps (dense, or
/// spike events) and its target.
pub trait SampleSource<F>: Sync {
    fn input(&self) -> LayerInput<'_, F>;
    fn target(&self) -> &Target;
}

impl<F: Float> SampleSource<F> for (&[F], &Target) {
    fn input(&self) -> LayerInput<'_, F> {
        LayerInput::Dense(self.0)
    }
    fn target(&self) -> &Target {
        self.1
    }
}

/// The forward record of one sample.
#[derive(Debug, Clone, Default)]
pub struct Tape<F> {
    pub layers: Vec<LayerTape<F>>,
    /// Dropout masks of the hidden layers (empty without dropout), `[steps * size]` each.
    pub masks: Vec<Vec<F>>,
    /// Masked spikes fed to the next layer (only with dropout).
    pub emitted: Vec<Vec<F>>,
}

impl<F: Float> Network<F> {
    pub fn hidden(&self) -> &[Layer<F>] {
        &self.layers[..self.layers.len() - 1]
    }

    pub fn readout(&self) -> &Layer<F> {
        &self.layers[self.layers.len() - 1]
    }

    pub fn inputs(&self) -> usize {
        self.layers[0].inputs
    }

    pub fn outputs(&self) -> usize {
        self.readout().size
    }

    pub fn zeros_like(&self) -> Self {
        Network { layers: self.layers.iter().map(Layer::zeros_like).collect(), dt: self.dt }
    }

    /// Number of hidden neurons.
    pub fn hidden_neurons(&self) -> usize {
        self.hidden().iter().map(|l| l.size).sum()
    }

    /// Dropout masks for sample `b`: `[hidden layer][steps * size]`, entries `0` or `1/(1-p)`.
    /// Entry `e` is dropped when the `e`-th `rng.gen::<f64>()` of the stream is
    /// below `p` (drawn in bulk, [`super::BulkUniform`]).
    pub fn dropout_masks(&self, p: f64, seed: u64, sample: usize, steps: usize) -> Vec<Vec<F>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(sample as u64);
        let keep = F::of(1.0 / (1.0 - p));
        self.hidden()
            .iter()
            .map(|l| {
                let mut draws = super::BulkUniform::draw(&mut rng, steps * l.size);
                draws.below(p, steps * l.size).map(|drop| if drop { F::zero() } else { keep }).collect()
            })
            .collect()
    }

    /// Runs one sample (`input`: e.g. `&[F]`, `[steps, inputs]`) through every layer.
    pub fn forward<'a>(&self, input: impl Into<LayerInput<'a, F>>, steps: usize, masks: Vec<Vec<F>>) -> Tape<F> {
        self.forward_prepared(&self.prepare(), input.into(), steps, masks)
    }

    /// Every layer's parameters arranged for the kernels ([`Layer::prepare`]),
    /// once for all the samples of a batch.
    pub fn prepare(&self) -> Vec<Prepared<F>> {
        self.layers.iter().map(Layer::prepare).collect()
    }

    /// [`Network::forward`] with the layers prepared by [`Network::prepare`].
    pub fn forward_prepared(
        &self,
        prepared: &[Prepared<F>],
        input: LayerInput<'_, F>,
        steps: usize,
        masks: Vec<Vec<F>>,
    ) -> Tape<F> {
        assert_eq!(prepared.len(), self.layers.len(), "prepared for another network");
        let mut tape = Tape { layers: vec![LayerTape::default(); self.layers.len()], masks, emitted: Vec::new() };
        for (l, layer) in self.layers.iter().enumerate() {
            let (below, rest) = tape.layers.split_at_mut(l);
            let x = if l == 0 {
                input
            } else if tape.masks.is_empty() {
                LayerInput::Dense(&below[l - 1].spikes)
            } else {
                LayerInput::Dense(&tape.emitted[l - 1])
            };
            layer.forward_prepared(&prepared[l], x, steps, &mut rest[0]);
            if !tape.masks.is_empty() && l + 1 < self.layers.len() {
                let emitted = rest[0].spikes.iter().zip(&tape.masks[l]).map(|(z, m)| *z * *m).collect();
                tape.emitted.push(emitted);
            }
        }
        tape
    }

    /// The readout trace of a tape, `[steps, outputs]`: the potentials `y^t` of
    /// a leaky readout, or the spikes of a spiking one (spike-count readout).
    pub fn output<'t>(&self, tape: &'t Tape<F>) -> &'t [F] {
        let top = &tape.layers[self.layers.len() - 1];
        if self.readout().spiking.is_some() {
            &top.spikes
        } else {
            &top.potential
        }
    }

    /// Accumulates one sample's gradient into `grad` (decay gradients still without
    /// their weight factor, see [`Network::finish_gradient`]), layer by layer from
    /// the readout down (model.md §5).
    pub fn backward<'a>(
        &self,
        input: impl Into<LayerInput<'a, F>>,
        steps: usize,
        tape: &Tape<F>,
        d_output: Vec<F>,
        rate_grad: Option<&[Vec<F>]>,
        grad: &mut Network<F>,
    ) {
        self.backward_prepared(&self.prepare(), input.into(), steps, tape, d_output, rate_grad, grad)
    }

    /// [`Network::backward`] with the layers prepared by [`Network::prepare`].
    #[allow(clippy::too_many_arguments)]
    pub fn backward_prepared(
        &self,
        prepared: &[Prepared<F>],
        input: LayerInput<'_, F>,
        steps: usize,
        tape: &Tape<F>,
        d_output: Vec<F>,
        rate_grad: Option<&[Vec<F>]>,
        grad: &mut Network<F>,
    ) {
        assert_eq!(prepared.len(), self.layers.len(), "prepared for another network");
        let mut d_out = d_output;
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let x = if l == 0 {
                input
            } else if tape.masks.is_empty() {
                LayerInput::Dense(&tape.layers[l - 1].spikes)
            } else {
                LayerInput::Dense(&tape.emitted[l - 1])
            };
            let mut d_input = (l > 0).then(|| vec![F::zero(); steps * layer.inputs]);
            let rate = rate_grad.and_then(|r| r.get(l)).map(|v| &v[..]);
            let rate = if layer.spiking.is_some() { rate } else { None };
            layer.backward_prepared(
                &prepared[l],
                x,
                steps,
                &tape.layers[l],
                &mut d_out,
                rate,
                &mut grad.layers[l],
                d_input.as_deref_mut(),
            );
            if let Some(mut d) = d_input {
                if !tape.masks.is_empty() {
                    for (d, m) in d.iter_mut().zip(&tape.masks[l - 1]) {
                        *d *= *m;
                    }
                }
                d_out = d;
            }
        }
    }

    /// Applies the weight factor of the per-synapse decay gradients (once per batch).
    pub fn finish_gradient(&self, grad: &mut Network<F>) {
        for (layer, g) in self.layers.iter().zip(&mut grad.layers) {
            layer.finish_gradient(g);
        }
    }

    /// Spike counts per hidden neuron over a tape.
    fn spike_counts(&self, tape: &Tape<F>, steps: usize) -> Vec<f64> {
        let mut counts = Vec::with_capacity(self.hidden_neurons());
        for (layer, lt) in self.hidden().iter().zip(&tape.layers) {
            // step by step over contiguous rows; each count sums its steps in order
            let start = counts.len();
            counts.resize(start + layer.size, 0.0);
            for z in lt.spikes.chunks_exact(layer.size.max(1)).take(steps) {
                for (count, z) in counts[start..].iter_mut().zip(z) {
                    *count += z.f64();
                }
            }
        }
        counts
    }

    fn masks_for(&self, dropout: &Dropout<'_, F>, sample: usize, steps: usize) -> Vec<Vec<F>> {
        match dropout {
            Dropout::None => Vec::new(),
            Dropout::Random { p, .. } if *p <= 0.0 => Vec::new(),
            Dropout::Random { p, seed } => self.dropout_masks(*p, *seed, sample, steps),
            Dropout::Fixed(masks) => masks[sample].clone(),
        }
    }

    /// Batch loss (mean over samples, plus the regulariser) and, when `with_grad`,
    /// its exact gradient. `samples` are e.g. `(input [steps, inputs], target)` pairs.
    ///
    /// Each sample's forward record is dropped as soon as its reverse sweep is
    /// done, so memory holds the records of the samples in flight only. The
    /// firing-rate regulariser couples the samples through the batch's rates: its
    /// gradient needs every sample's forward pass first, so records are kept
    /// while they fit [`TAPE_BUDGET_BYTES`] and recomputed otherwise (the same
    /// numbers either way).
    pub fn loss_and_grad<S: SampleSource<F>>(
        &self,
        samples: &[S],
        steps: usize,
        objective: &Objective,
        dropout: Dropout<'_, F>,
        with_grad: bool,
    ) -> (BatchStats, Option<Network<F>>) {
        let (stats, grad, _) = self.batch_pass(samples, steps, objective, dropout, with_grad, &|_| ());
        (stats, grad)
    }

    /// The loss of [`Network::loss_and_grad`] without dropout or gradient, and
    /// `figures` of each sample's readout trace ([`Network::output`]), in sample
    /// order, from the same forward pass.
    pub fn evaluate_with<S: SampleSource<F>, T: Send>(
        &self,
        samples: &[S],
        steps: usize,
        objective: &Objective,
        figures: &(dyn Fn(&[F]) -> T + Sync),
    ) -> (BatchStats, Vec<T>) {
        let (stats, _, figures) = self.batch_pass(samples, steps, objective, Dropout::None, false, figures);
        (stats, figures)
    }

    /// [`Network::loss_and_grad`], with `figures` of each sample's readout trace.
    fn batch_pass<S: SampleSource<F>, T: Send>(
        &self,
        samples: &[S],
        steps: usize,
        objective: &Objective,
        dropout: Dropout<'_, F>,
        with_grad: bool,
        figures: &(dyn Fn(&[F]) -> T + Sync),
    ) -> (BatchStats, Option<Network<F>>, Vec<T>) {
        let batch = samples.len();
        let outputs = self.outputs();
        let prepared = self.prepare();
        let run = |b: usize| -> (Tape<F>, SampleLoss<F>) {
            let tape = self.forward_prepared(&prepared, samples[b].input(), steps, self.masks_for(&dropout, b, steps));
            let loss = objective.loss.sample_loss::<F>(
                self.output(&tape),
                steps,
                outputs,
                objective.skip_steps,
                samples[b].target(),
            );
            (tape, loss)
        };
        let summarize = |tape: &Tape<F>, loss: &SampleLoss<F>| -> Summary<T> {
            (loss.loss, loss.correct, self.spike_counts(tape, steps), figures(self.output(tape)))
        };
        let couple = with_grad && objective.rate_regulariser.is_some();
        let keep = couple && batch * steps * self.hidden_neurons() * 4 * std::mem::size_of::<F>() <= TAPE_BUDGET_BYTES;

        // first pass (only when the regulariser needs the batch's rates first)
        let mut kept: Vec<Option<(Tape<F>, SampleLoss<F>)>> = Vec::new();
        let mut per_sample: Vec<Summary<T>> = Vec::new();
        if couple {
            let first: Vec<_> = (0..batch)
                .into_par_iter()
                .map(|b| {
                    let (tape, loss) = run(b);
                    let summary = summarize(&tape, &loss);
                    (summary, keep.then_some((tape, loss)))
                })
                .collect();
            for (summary, tape) in first {
                per_sample.push(summary);
                kept.push(tape);
            }
        }
        let rate_grad: Option<(f64, Vec<Vec<F>>)> = objective.rate_regulariser.filter(|_| couple).map(|reg| {
            let counts = sum_counts(per_sample.iter().map(|p| &p.2), self.hidden_neurons());
            let (loss, grad) = reg.loss_and_grad(&counts, batch, steps, self.dt);
            let mut per_layer = Vec::new();
            let mut offset = 0;
            for layer in self.hidden() {
                per_layer.push(grad[offset..offset + layer.size].iter().map(|g| F::of(*g)).collect::<Vec<F>>());
                offset += layer.size;
            }
            (loss, per_layer)
        });

        // main pass: forward (unless kept), loss, reverse sweep, in fixed chunks
        let scale = F::of(1.0 / batch.max(1) as f64);
        let kept = std::sync::Mutex::new(kept);
        // Chunk results are summed in chunk order as soon as that order allows,
        // so that only the chunks that finished early wait in memory (not all of
        // them): the sums, and so the bits, do not depend on which thread did what.
        type ChunkResult<F, T> = (Option<Network<F>>, Vec<Summary<T>>);
        struct Ordered<F, T> {
            next: usize,
            waiting: std::collections::BTreeMap<usize, ChunkResult<F, T>>,
            grad: Option<Network<F>>,
            per_sample: Vec<Summary<T>>,
        }
        let ordered = std::sync::Mutex::new(Ordered {
            next: 0,
            waiting: std::collections::BTreeMap::new(),
            grad: None,
            per_sample: std::mem::take(&mut per_sample),
        });
        (0..batch).collect::<Vec<_>>().par_chunks(GRADIENT_CHUNK).enumerate().for_each(|(index, chunk)| {
            let mut grad = with_grad.then(|| self.zeros_like());
            let mut summaries = Vec::new();
            for &b in chunk {
                let stored = if keep { kept.lock().map(|mut k| k[b].take()).unwrap_or(None) } else { None };
                let (tape, loss) = stored.unwrap_or_else(|| run(b));
                if !couple {
                    summaries.push(summarize(&tape, &loss));
                }
                if let Some(grad) = grad.as_mut() {
                    let d_output = loss.d_output.iter().map(|d| *d * scale).collect();
                    let rate = rate_grad.as_ref().map(|(_, r)| &r[..]);
                    self.backward_prepared(&prepared, samples[b].input(), steps, &tape, d_output, rate, grad);
                }
            }
            // a poisoned lock means another chunk panicked, which rayon re-raises
            if let Ok(mut state) = ordered.lock() {
                state.waiting.insert(index, (grad, summaries));
                loop {
                    let next = state.next;
                    let Some((g, summaries)) = state.waiting.remove(&next) else { break };
                    state.next += 1;
                    state.per_sample.extend(summaries);
                    if let Some(g) = g {
                        match state.grad.as_mut() {
                            None => state.grad = Some(g),
                            Some(total) => total.add_assign(&g),
                        }
                    }
                }
            }
        });
        let state = ordered.into_inner().expect("a gradient chunk panicked");
        assert!(state.waiting.is_empty(), "every chunk is summed");
        let mut grad = state.grad;
        per_sample = state.per_sample;
        if let Some(grad) = grad.as_mut() {
            self.finish_gradient(grad);
        }
        if with_grad && grad.is_none() {
            grad = Some(self.zeros_like());
        }

        let counts = sum_counts(per_sample.iter().map(|p| &p.2), self.hidden_neurons());
        let duration = (batch * steps) as f64 * self.dt;
        let mut stats = BatchStats {
            samples: batch,
            correct: per_sample.iter().filter(|p| p.1 == Some(true)).count(),
            task_loss: per_sample.iter().map(|p| p.0).sum::<f64>() / batch.max(1) as f64,
            mean_rate_hz: counts.iter().sum::<f64>() / (counts.len().max(1) as f64 * duration.max(f64::MIN_POSITIVE)),
            ..BatchStats::default()
        };
        stats.regulariser_loss = match (&rate_grad, objective.rate_regulariser) {
            (Some((loss, _)), _) => *loss,
            (None, Some(reg)) => reg.loss_and_grad(&counts, batch, steps, self.dt).0,
            (None, None) => 0.0,
        };
        stats.loss = stats.task_loss + stats.regulariser_loss;
        (stats, grad, per_sample.into_iter().map(|p| p.3).collect())
    }

    /// The same network in another float type.
    pub fn cast<G: Float>(&self) -> Network<G> {
        let c = |v: &Vec<F>| v.iter().map(|x| G::of(x.f64())).collect::<Vec<G>>();
        Network {
            dt: self.dt,
            layers: self
                .layers
                .iter()
                .map(|l| Layer {
                    inputs: l.inputs,
                    size: l.size,
                    input_weight: c(&l.input_weight),
                    recurrent_weight: l.recurrent_weight.as_ref().map(c),
                    decays: match &l.decays {
                        Decays::Synapse { input, recurrent, reset } => Decays::Synapse {
                            input: c(input),
                            recurrent: recurrent.as_ref().map(c),
                            reset: G::of(reset.f64()),
                        },
                        Decays::Neuron { rho, learnable } => Decays::Neuron { rho: c(rho), learnable: *learnable },
                    },
                    spiking: l.spiking.map(|s| super::layer::Spiking {
                        threshold: G::of(s.threshold.f64()),
                        activation: s.activation,
                        adaptation: s.adaptation.map(|a| super::layer::Adaptation {
                            decay: G::of(a.decay.f64()),
                            strength: G::of(a.strength.f64()),
                        }),
                    }),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layer::{Layer, Spiking};
    use crate::model::{Activation, Surrogate};
    use rand::Rng;

    /// The masks drawn in bulk are those of one `rng.gen::<f64>()` per entry.
    #[test]
    fn dropout_masks_are_one_uniform_number_per_entry() {
        let layer = |inputs: usize, size: usize, spiking: bool| Layer::<f32> {
            inputs,
            size,
            input_weight: vec![0.0; inputs * size],
            recurrent_weight: None,
            decays: Decays::Neuron { rho: vec![0.9; size], learnable: false },
            spiking: spiking.then_some(Spiking {
                threshold: 1.0,
                activation: Activation::Step(Surrogate::Triangle),
                adaptation: None,
            }),
        };
        let net = Network { layers: vec![layer(3, 7, true), layer(7, 5, true), layer(5, 2, false)], dt: 1e-3 };
        let cases =
            [(1u64, 0usize, 1usize, 0.2), (7, 3, 13, 0.5), (99, 31, 250, 0.2), (5, 2, 40, 0.1), (6, 1, 40, 1.0 / 3.0)];
        for (seed, sample, steps, p) in cases {
            let got = net.dropout_masks(p, seed, sample, steps);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(sample as u64);
            let keep = (1.0 / (1.0 - p)) as f32;
            for (mask, layer) in got.iter().zip(net.hidden()) {
                let want: Vec<f32> =
                    (0..steps * layer.size).map(|_| if rng.gen::<f64>() < p { 0.0 } else { keep }).collect();
                assert_eq!(mask, &want, "seed {seed} sample {sample}");
            }
        }
    }
}
