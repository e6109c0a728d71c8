//! Batches: the loss of a batch, its readout traces' figures and its exact
//! gradient, with the work split over samples (rayon). Results do not depend on
//! the number of threads: samples are grouped in fixed chunks and chunk results
//! are summed in chunk order ([`OrderedSum`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::layer::{LayerInput, Prepared};
use super::loss::{LossKind, RateRegulariser, SampleLoss, Target};
use super::network::{Network, SampleReverse, Tape};
use super::Float;

/// Samples whose gradients are summed by one task before the ordered reduction.
const GRADIENT_CHUNK: usize = 4;

/// Forward records of a whole batch are kept for the regulariser's second pass
/// while they take at most this much memory; beyond it they are recomputed.
pub const TAPE_BUDGET_BYTES: usize = 64 << 20;

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

/// One sample's forward record and loss.
struct SampleRun<F> {
    tape: Tape<F>,
    loss: SampleLoss<F>,
}

/// The runs of the regulariser's first pass kept for the reverse sweeps, by sample.
type Kept<F> = BTreeMap<usize, SampleRun<F>>;

/// What the regulariser's first pass gives: every sample's summary and
/// `dL_reg/dz` per hidden layer, `[size]` each.
struct RatePass<F> {
    samples: Vec<SampleSummary<()>>,
    grad: Vec<Vec<F>>,
}

/// What a batch keeps of one sample.
struct SampleSummary<T> {
    loss: f64,
    /// Whether it was classified correctly (classification losses).
    correct: Option<bool>,
    /// Spikes per hidden neuron.
    spike_counts: Vec<f64>,
    /// The caller's figures of its readout trace.
    figures: T,
}

/// The results of consecutive samples: their summaries and, for a gradient
/// pass, their summed gradient (decay gradients without their weight factor).
struct Summed<F, T> {
    samples: Vec<SampleSummary<T>>,
    grad: Option<Network<F>>,
}

impl<F: Float, T> Summed<F, T> {
    /// Appends the results of the samples that follow.
    fn append(&mut self, next: Summed<F, T>) {
        self.samples.extend(next.samples);
        match (self.grad.as_mut(), next.grad) {
            (Some(total), Some(g)) => total.add_assign(&g),
            (None, g) => self.grad = g,
            (Some(_), None) => {}
        }
    }
}

/// Chunk results summed in chunk order as soon as that order allows, so that
/// only the chunks that finished early wait in memory (not all of them): the
/// sums, and so the bits, do not depend on which thread did what.
struct OrderedSum<F, T> {
    next: usize,
    waiting: BTreeMap<usize, Summed<F, T>>,
    total: Summed<F, T>,
}

impl<F: Float, T> OrderedSum<F, T> {
    fn new() -> Self {
        OrderedSum { next: 0, waiting: BTreeMap::new(), total: Summed { samples: Vec::new(), grad: None } }
    }

    /// Takes the result of chunk `index` and sums every chunk whose turn has come.
    fn add(&mut self, index: usize, chunk: Summed<F, T>) {
        self.waiting.insert(index, chunk);
        while let Some(chunk) = self.waiting.remove(&self.next) {
            self.next += 1;
            self.total.append(chunk);
        }
    }

    fn finish(self) -> Summed<F, T> {
        assert!(self.waiting.is_empty(), "every chunk is summed");
        self.total
    }
}

/// A batch as the passes over it read it.
struct Batch<'a, F, S> {
    samples: &'a [S],
    steps: usize,
    objective: &'a Objective,
    dropout: Dropout<'a, F>,
    prepared: Vec<Prepared<F>>,
}

impl<F: Float> Network<F> {
    /// Batch loss: the mean over samples, plus the regulariser.
    /// `samples` are e.g. `(input [steps, inputs], target)` pairs.
    pub fn loss<S: SampleSource<F>>(
        &self,
        samples: &[S],
        steps: usize,
        objective: &Objective,
        dropout: Dropout<'_, F>,
    ) -> BatchStats {
        self.forward_batch(samples, steps, objective, dropout, &|_| ()).0
    }

    /// The loss of [`Network::loss`] without dropout, and `figures` of each
    /// sample's readout trace ([`Network::output`]), in sample order, from the
    /// same forward pass.
    pub fn loss_and_outputs<S: SampleSource<F>, T: Send>(
        &self,
        samples: &[S],
        steps: usize,
        objective: &Objective,
        figures: &(dyn Fn(&[F]) -> T + Sync),
    ) -> (BatchStats, Vec<T>) {
        self.forward_batch(samples, steps, objective, Dropout::None, figures)
    }

    /// The loss of [`Network::loss`] and its exact gradient.
    ///
    /// Each sample's forward record is dropped as soon as its reverse sweep is
    /// done, so memory holds the records of the samples in flight only. The
    /// firing-rate regulariser couples the samples through the batch's rates: its
    /// gradient needs every sample's forward pass first, so records are kept
    /// while they fit [`TAPE_BUDGET_BYTES`] and recomputed otherwise (the same
    /// numbers either way). Kept records of a chunk go through the reverse sweep
    /// as one group ([`Network::backward_prepared`]).
    pub fn loss_and_grad<S: SampleSource<F>>(
        &self,
        samples: &[S],
        steps: usize,
        objective: &Objective,
        dropout: Dropout<'_, F>,
    ) -> (BatchStats, Network<F>) {
        let batch = Batch { samples, steps, objective, dropout, prepared: self.prepare() };
        let size = samples.len();
        let scale = F::of(1.0 / size.max(1) as f64);
        let fits = size * steps * self.hidden_neurons() * 4 * std::mem::size_of::<F>() <= TAPE_BUDGET_BYTES;
        let kept = (fits && objective.rate_regulariser.is_some()).then(|| Mutex::new(Kept::new()));
        let first = objective.rate_regulariser.map(|regulariser| self.rate_pass(&batch, regulariser, kept.as_ref()));
        let rate_grad = first.as_ref().map(|first| &first.grad[..]);

        // forward (unless kept), loss and reverse sweep of every sample
        let summed = self.in_chunks(
            size,
            GRADIENT_CHUNK,
            || Some(self.zeros_like()),
            |chunk, grad| {
                let grad = grad.expect("a gradient pass");
                let mut summaries = Vec::new();
                // kept records go through the reverse sweep together (recurrent
                // HetSyn layers share their loads, [`Layer::backward_prepared`]);
                // otherwise each sample's sweep follows its forward pass while
                // its record is still in cache, and memory holds one record
                for group in chunk.chunks(if kept.is_some() { chunk.len() } else { 1 }) {
                    let runs: Vec<SampleRun<F>> = group
                        .iter()
                        .map(|&b| {
                            // a poisoned lock means another sample panicked, which rayon re-raises
                            let stored = kept.as_ref().and_then(|kept| kept.lock().ok()?.remove(&b));
                            stored.unwrap_or_else(|| self.run_sample(&batch, b))
                        })
                        .collect();
                    if first.is_none() {
                        summaries.extend(runs.iter().map(|run| self.summarize(run, steps, &|_| ())));
                    }
                    let reverse = runs
                        .iter()
                        .zip(group)
                        .map(|(run, &b)| SampleReverse {
                            input: samples[b].input(),
                            tape: &run.tape,
                            d_output: run.loss.d_output.iter().map(|d| *d * scale).collect(),
                        })
                        .collect();
                    self.backward_prepared(&batch.prepared, reverse, steps, rate_grad, grad);
                }
                summaries
            },
        );
        let summaries = first.map_or(summed.samples, |first| first.samples);
        let mut grad = summed.grad.unwrap_or_else(|| self.zeros_like());
        self.finish_gradient(&mut grad);
        (self.batch_stats(&summaries, steps, objective), grad)
    }

    /// The regulariser's first pass: every sample's forward pass and summary
    /// (the runs go to `kept`, if given), and from the batch's rates the
    /// regulariser's gradient.
    fn rate_pass<S: SampleSource<F>>(
        &self,
        batch: &Batch<'_, F, S>,
        regulariser: RateRegulariser,
        kept: Option<&Mutex<Kept<F>>>,
    ) -> RatePass<F> {
        let (size, steps) = (batch.samples.len(), batch.steps);
        let first = self.in_chunks(
            size,
            1,
            || None,
            |chunk, _| {
                let mut summaries = Vec::with_capacity(chunk.len());
                for &b in chunk {
                    let run = self.run_sample(batch, b);
                    summaries.push(self.summarize(&run, steps, &|_| ()));
                    // a poisoned lock means another sample panicked, which rayon re-raises
                    if let Some(Ok(mut kept)) = kept.map(Mutex::lock) {
                        kept.insert(b, run);
                    }
                }
                summaries
            },
        );
        let counts = sum_counts(first.samples.iter().map(|s| &s.spike_counts), self.hidden_neurons());
        let (_, grad) = regulariser.loss_and_grad(&counts, size, steps, self.dt);
        let mut per_layer = Vec::new();
        let mut offset = 0;
        for layer in self.hidden() {
            per_layer.push(grad[offset..offset + layer.size].iter().map(|g| F::of(*g)).collect::<Vec<F>>());
            offset += layer.size;
        }
        RatePass { samples: first.samples, grad: per_layer }
    }

    /// [`Network::loss_and_outputs`] with dropout.
    fn forward_batch<S: SampleSource<F>, T: Send>(
        &self,
        samples: &[S],
        steps: usize,
        objective: &Objective,
        dropout: Dropout<'_, F>,
        figures: &(dyn Fn(&[F]) -> T + Sync),
    ) -> (BatchStats, Vec<T>) {
        let batch = Batch { samples, steps, objective, dropout, prepared: self.prepare() };
        let summed = self.in_chunks(
            samples.len(),
            GRADIENT_CHUNK,
            || None,
            |chunk, _| chunk.iter().map(|&b| self.summarize(&self.run_sample(&batch, b), steps, figures)).collect(),
        );
        let stats = self.batch_stats(&summed.samples, steps, objective);
        (stats, summed.samples.into_iter().map(|s| s.figures).collect())
    }

    /// The one batch runner: samples `0..size` in fixed chunks of `chunk` on the
    /// rayon pool. `run(samples, grad)` does the samples of a chunk (accumulating
    /// into the chunk's gradient, which `start` makes, if any) and returns their
    /// summaries, if it makes them; chunk results are summed in chunk order.
    ///
    /// Each worker takes the next chunk in order from a shared counter, so the
    /// chunks finish nearly in order and few wait to be summed: split in halves
    /// (rayon's `par_chunks`), the second half's chunks, each with a gradient
    /// the size of the network, waited for the whole first half.
    fn in_chunks<T: Send>(
        &self,
        size: usize,
        chunk: usize,
        start: impl Fn() -> Option<Network<F>> + Sync,
        run: impl Fn(&[usize], Option<&mut Network<F>>) -> Vec<SampleSummary<T>> + Sync,
    ) -> Summed<F, T> {
        let samples: Vec<usize> = (0..size).collect();
        let chunks = size.div_ceil(chunk);
        let next = AtomicUsize::new(0);
        let ordered = Mutex::new(OrderedSum::new());
        (0..rayon::current_num_threads().min(chunks)).into_par_iter().for_each(|_| loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= chunks {
                break;
            }
            let mut grad = start();
            let summaries = run(&samples[index * chunk..((index + 1) * chunk).min(size)], grad.as_mut());
            // a poisoned lock means another chunk panicked, which rayon re-raises
            if let Ok(mut ordered) = ordered.lock() {
                ordered.add(index, Summed { samples: summaries, grad });
            }
        });
        ordered.into_inner().expect("a chunk panicked").finish()
    }

    /// Sample `b`'s forward pass and loss.
    fn run_sample<S: SampleSource<F>>(&self, batch: &Batch<'_, F, S>, b: usize) -> SampleRun<F> {
        let (sample, steps, objective) = (&batch.samples[b], batch.steps, batch.objective);
        let masks = self.masks_for(&batch.dropout, b, steps);
        let tape = self.forward_prepared(&batch.prepared, sample.input(), steps, masks);
        let loss = objective.loss.sample_loss::<F>(
            self.output(&tape),
            steps,
            self.outputs(),
            objective.skip_steps,
            sample.target(),
        );
        SampleRun { tape, loss }
    }

    fn summarize<T>(&self, run: &SampleRun<F>, steps: usize, figures: &(dyn Fn(&[F]) -> T + Sync)) -> SampleSummary<T> {
        SampleSummary {
            loss: run.loss.loss,
            correct: run.loss.correct,
            spike_counts: self.spike_counts(&run.tape, steps),
            figures: figures(self.output(&run.tape)),
        }
    }

    /// The batch's losses, correct predictions and mean firing rate.
    fn batch_stats<T>(&self, samples: &[SampleSummary<T>], steps: usize, objective: &Objective) -> BatchStats {
        let size = samples.len();
        let counts = sum_counts(samples.iter().map(|s| &s.spike_counts), self.hidden_neurons());
        let duration = (size * steps) as f64 * self.dt;
        let task_loss = samples.iter().map(|s| s.loss).sum::<f64>() / size.max(1) as f64;
        let regulariser_loss =
            objective.rate_regulariser.map_or(0.0, |reg| reg.loss_and_grad(&counts, size, steps, self.dt).0);
        BatchStats {
            loss: task_loss + regulariser_loss,
            task_loss,
            regulariser_loss,
            samples: size,
            correct: samples.iter().filter(|s| s.correct == Some(true)).count(),
            mean_rate_hz: counts.iter().sum::<f64>() / (counts.len().max(1) as f64 * duration.max(f64::MIN_POSITIVE)),
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

    fn masks_for(&self, dropout: &Dropout<'_, F>, sample: usize, steps: usize) -> Vec<Vec<F>> {
        match dropout {
            Dropout::None => Vec::new(),
            Dropout::Random { p, .. } if *p <= 0.0 => Vec::new(),
            Dropout::Random { p, seed } => self.dropout_masks(*p, *seed, sample, steps),
            Dropout::Fixed(masks) => masks[sample].clone(),
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layer::{Decays, Layer, Spiking};
    use crate::model::{Activation, Surrogate};
    use rand::Rng;

    /// The masks drawn in bulk are those of one `rng.gen::<f64>()` per entry.
    #[test]
    fn dropout_masks_are_one_uniform_number_per_entry() {
        let layer = |inputs: usize, size: usize, spiking: bool| {
            Layer::<f32>::new(
                inputs,
                size,
                vec![0.0; inputs * size],
                None,
                Decays::Neuron { rho: vec![0.9; size], learnable: false },
                spiking.then_some(Spiking {
                    threshold: 1.0,
                    activation: Activation::Step(Surrogate::Triangle),
                    adaptation: None,
                }),
            )
        };
        let net = Network::new(vec![layer(3, 7, true), layer(7, 5, true), layer(5, 2, false)], 1e-3);
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

    /// The figures of [`Network::loss_and_outputs`] come from the forward pass
    /// that gives its loss: one call per sample, on that sample's readout
    /// trace, in sample order.
    #[test]
    fn outputs_come_from_the_loss_pass() {
        use crate::model::init::{build, LayerSpec, ModelKind, NetworkSpec, TauInit};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let tau_init = TauInit::Uniform { low: 0.005, high: 0.05 };
        let spec = NetworkSpec {
            kind: ModelKind::Hetsynlif,
            dt: 1e-3,
            threshold: 0.5,
            surrogate: Surrogate::MultiGaussian,
            tau_reset: 0.02,
            adaptation_tau: 0.5,
            adaptation_strength: 0.1,
            weight_scale: 3.0,
            decay_min: 0.0,
            decay_max: 1.0,
            layers: vec![LayerSpec { size: 6, recurrent: true, tau_init }],
            readout_tau_init: tau_init,
            spiking_readout: false,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let net: Network<f32> = build(&spec, 4, 2, &mut rng);
        let (steps, size) = (20, 9);
        let inputs: Vec<Vec<f32>> = (0..size)
            .map(|_| (0..steps * 4).map(|_| if rng.gen::<f64>() < 0.3 { 1.0 } else { 0.0 }).collect())
            .collect();
        let targets: Vec<Target> = (0..size).map(|b| Target::Class(b % 2)).collect();
        let samples: Vec<(&[f32], &Target)> = inputs.iter().map(|x| &x[..]).zip(&targets).collect();
        let objective = Objective { loss: LossKind::Last, skip_steps: 0, rate_regulariser: None };
        let calls = AtomicUsize::new(0);
        let (stats, outputs) = net.loss_and_outputs(&samples, steps, &objective, &|y: &[f32]| {
            calls.fetch_add(1, Ordering::Relaxed);
            y.to_vec()
        });
        assert_eq!(calls.into_inner(), size);
        for (x, y) in inputs.iter().zip(&outputs) {
            assert_eq!(net.output(&net.forward(&x[..], steps, Vec::new())), &y[..]);
        }
        assert_eq!(stats, net.loss(&samples, steps, &objective, Dropout::None));
    }

    /// Chunks finishing out of order are summed in chunk order.
    #[test]
    fn the_ordered_sum_appends_chunks_in_their_order() {
        let mut sum = OrderedSum::<f32, usize>::new();
        let chunk = |b: usize| Summed {
            samples: vec![SampleSummary { loss: 0.0, correct: None, spike_counts: Vec::new(), figures: b }],
            grad: None,
        };
        for index in [2, 0, 3, 1] {
            sum.add(index, chunk(index));
        }
        let order: Vec<usize> = sum.finish().samples.iter().map(|s| s.figures).collect();
        assert_eq!(order, [0, 1, 2, 3]);
    }
}
