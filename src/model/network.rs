//! The network: hidden layers and the readout, and batch losses and gradients
//! with the work split over samples (rayon). Results do not depend on the number
//! of threads: samples are grouped in fixed chunks and partial gradients are
//! summed in sample order.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::layer::{Decays, Layer, LayerTape};
use super::loss::{LossKind, RateRegulariser};
use super::Float;
use crate::tasks::Target;

/// Samples whose gradients are summed by one task before the ordered reduction.
const GRADIENT_CHUNK: usize = 4;

/// A stack of layers: `layers[..L-1]` hidden, `layers[L-1]` the leaky readout.
#[derive(Debug, Clone, PartialEq)]
pub struct Network<F> {
    pub layers: Vec<Layer<F>>,
    /// Step length, seconds (for firing rates).
    pub dt: f64,
}

/// What a parameter is, for optimizers (learning rates, clamping) and checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Weight,
    Decay,
}

/// Name (checkpoint.md), kind and shape of a learnable tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    pub name: String,
    pub kind: ParamKind,
    pub shape: Vec<usize>,
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
    Random { p: f64, seed: u64 },
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

    fn prefix(&self, l: usize) -> String {
        if l + 1 == self.layers.len() {
            "readout".to_string()
        } else {
            format!("hidden.{l}.input")
        }
    }

    /// The learnable tensors in a fixed order, with checkpoint names.
    pub fn params(&self) -> Vec<(ParamInfo, &[F])> {
        let mut out = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let prefix = self.prefix(l);
            let rec_prefix = format!("hidden.{l}.recurrent");
            let info = |name: String, kind, shape: Vec<usize>| ParamInfo { name, kind, shape };
            out.push((info(format!("{prefix}.weight"), ParamKind::Weight, vec![layer.size, layer.inputs]), &layer.input_weight[..]));
            match &layer.decays {
                Decays::Synapse { input, recurrent, .. } => {
                    out.push((info(format!("{prefix}.decay"), ParamKind::Decay, vec![layer.size, layer.inputs]), &input[..]));
                    if let (Some(u), Some(q)) = (&layer.recurrent_weight, recurrent) {
                        out.push((info(format!("{rec_prefix}.weight"), ParamKind::Weight, vec![layer.size, layer.size]), &u[..]));
                        out.push((info(format!("{rec_prefix}.decay"), ParamKind::Decay, vec![layer.size, layer.size]), &q[..]));
                    }
                }
                Decays::Neuron { rho, learnable } => {
                    if *learnable {
                        out.push((info(format!("{prefix}.decay"), ParamKind::Decay, vec![layer.size]), &rho[..]));
                    }
                    if let Some(u) = &layer.recurrent_weight {
                        out.push((info(format!("{rec_prefix}.weight"), ParamKind::Weight, vec![layer.size, layer.size]), &u[..]));
                    }
                }
            }
        }
        out
    }

    /// Mutable views of the learnable tensors, in the order of [`Network::params`].
    pub fn params_mut(&mut self) -> Vec<&mut [F]> {
        let mut out: Vec<&mut [F]> = Vec::new();
        for layer in &mut self.layers {
            out.push(&mut layer.input_weight[..]);
            match &mut layer.decays {
                Decays::Synapse { input, recurrent, .. } => {
                    out.push(&mut input[..]);
                    if let (Some(u), Some(q)) = (layer.recurrent_weight.as_mut(), recurrent.as_mut()) {
                        out.push(&mut u[..]);
                        out.push(&mut q[..]);
                    }
                }
                Decays::Neuron { rho, learnable } => {
                    if *learnable {
                        out.push(&mut rho[..]);
                    }
                    if let Some(u) = layer.recurrent_weight.as_mut() {
                        out.push(&mut u[..]);
                    }
                }
            }
        }
        out
    }

    /// Dropout masks for sample `b`: `[hidden layer][steps * size]`, entries `0` or `1/(1-p)`.
    pub fn dropout_masks(&self, p: f64, seed: u64, sample: usize, steps: usize) -> Vec<Vec<F>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(sample as u64);
        let keep = F::of(1.0 / (1.0 - p));
        self.hidden()
            .iter()
            .map(|l| (0..steps * l.size).map(|_| if rng.gen::<f64>() < p { F::zero() } else { keep }).collect())
            .collect()
    }

    /// Runs one sample (`input`: `[steps, inputs]`) through every layer.
    pub fn forward(&self, input: &[F], steps: usize, masks: Vec<Vec<F>>) -> Tape<F> {
        let mut tape = Tape { layers: vec![LayerTape::default(); self.layers.len()], masks, emitted: Vec::new() };
        for (l, layer) in self.layers.iter().enumerate() {
            let (below, rest) = tape.layers.split_at_mut(l);
            let x: &[F] = if l == 0 {
                input
            } else if tape.masks.is_empty() {
                &below[l - 1].spikes
            } else {
                &tape.emitted[l - 1]
            };
            layer.forward(x, steps, &mut rest[0]);
            if !tape.masks.is_empty() && l + 1 < self.layers.len() {
                let emitted = rest[0].spikes.iter().zip(&tape.masks[l]).map(|(z, m)| *z * *m).collect();
                tape.emitted.push(emitted);
            }
        }
        tape
    }

    /// The readout trace `y` of a tape, `[steps, outputs]`.
    pub fn output<'t>(&self, tape: &'t Tape<F>) -> &'t [F] {
        &tape.layers[self.layers.len() - 1].potential
    }

    /// Accumulates one sample's gradient into `grad` (decay gradients still without
    /// their weight factor, see [`Network::finish_gradient`]), layer by layer from
    /// the readout down (model.md §5).
    pub fn backward(&self, input: &[F], steps: usize, tape: &Tape<F>, d_output: Vec<F>, rate_grad: Option<&[Vec<F>]>, grad: &mut Network<F>) {
        let mut d_out = d_output;
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let x: &[F] = if l == 0 {
                input
            } else if tape.masks.is_empty() {
                &tape.layers[l - 1].spikes
            } else {
                &tape.emitted[l - 1]
            };
            let mut d_input = (l > 0).then(|| vec![F::zero(); steps * layer.inputs]);
            let rate = rate_grad.and_then(|r| r.get(l)).map(|v| &v[..]);
            let rate = if layer.spiking.is_some() { rate } else { None };
            layer.backward(x, steps, &tape.layers[l], &d_out, rate, &mut grad.layers[l], d_input.as_deref_mut());
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
            for j in 0..layer.size {
                counts.push((0..steps).map(|t| lt.spikes[t * layer.size + j].f64()).sum());
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
    /// its exact gradient. `samples` are `(input [steps, inputs], target)`.
    pub fn loss_and_grad(
        &self,
        samples: &[(&[F], &Target)],
        steps: usize,
        objective: &Objective,
        dropout: Dropout<'_, F>,
        with_grad: bool,
    ) -> (BatchStats, Option<Network<F>>) {
        let batch = samples.len();
        let outputs = self.outputs();
        let tapes: Vec<Tape<F>> = (0..batch)
            .into_par_iter()
            .map(|b| self.forward(samples[b].0, steps, self.masks_for(&dropout, b, steps)))
            .collect();
        let losses: Vec<_> = (0..batch)
            .into_par_iter()
            .map(|b| objective.loss.sample_loss::<F>(self.output(&tapes[b]), steps, outputs, objective.skip_steps, samples[b].1))
            .collect();

        let mut counts = vec![0.0; self.hidden_neurons()];
        for tape in &tapes {
            for (c, s) in counts.iter_mut().zip(self.spike_counts(tape, steps)) {
                *c += s;
            }
        }
        let total_spikes: f64 = counts.iter().sum();
        let duration = (batch * steps) as f64 * self.dt;
        let mut stats = BatchStats {
            samples: batch,
            correct: losses.iter().filter(|l| l.correct == Some(true)).count(),
            task_loss: losses.iter().map(|l| l.loss).sum::<f64>() / batch.max(1) as f64,
            mean_rate_hz: total_spikes / (counts.len().max(1) as f64 * duration.max(f64::MIN_POSITIVE)),
            ..BatchStats::default()
        };
        let mut rate_grad = None;
        if let Some(reg) = &objective.rate_regulariser {
            let (loss, grad) = reg.loss_and_grad(&counts, batch, steps, self.dt);
            stats.regulariser_loss = loss;
            let mut per_layer = Vec::new();
            let mut offset = 0;
            for layer in self.hidden() {
                per_layer.push(grad[offset..offset + layer.size].iter().map(|g| F::of(*g)).collect::<Vec<F>>());
                offset += layer.size;
            }
            rate_grad = Some(per_layer);
        }
        stats.loss = stats.task_loss + stats.regulariser_loss;
        if !with_grad {
            return (stats, None);
        }

        let scale = F::of(1.0 / batch.max(1) as f64);
        let partial: Vec<Network<F>> = (0..batch)
            .collect::<Vec<_>>()
            .par_chunks(GRADIENT_CHUNK)
            .map(|chunk| {
                let mut grad = self.zeros_like();
                for &b in chunk {
                    let d_output = losses[b].d_output.iter().map(|d| *d * scale).collect();
                    self.backward(samples[b].0, steps, &tapes[b], d_output, rate_grad.as_deref(), &mut grad);
                }
                grad
            })
            .collect();
        let mut partial = partial.into_iter();
        let mut grad = partial.next().unwrap_or_else(|| self.zeros_like());
        for p in partial {
            grad.add_assign(&p);
        }
        self.finish_gradient(&mut grad);
        (stats, Some(grad))
    }

    /// `self += other`, element by element (same shapes).
    pub fn add_assign(&mut self, other: &Network<F>) {
        fn add<F: Float>(a: &mut [F], b: &[F]) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += *y;
            }
        }
        for (a, b) in self.layers.iter_mut().zip(&other.layers) {
            add(&mut a.input_weight, &b.input_weight);
            if let (Some(x), Some(y)) = (a.recurrent_weight.as_mut(), &b.recurrent_weight) {
                add(x, y);
            }
            match (&mut a.decays, &b.decays) {
                (Decays::Synapse { input: x, recurrent: xr, .. }, Decays::Synapse { input: y, recurrent: yr, .. }) => {
                    add(x, y);
                    if let (Some(x), Some(y)) = (xr.as_mut(), yr) {
                        add(x, y);
                    }
                }
                (Decays::Neuron { rho: x, .. }, Decays::Neuron { rho: y, .. }) => add(x, y),
                _ => panic!("add_assign of networks of different kinds"),
            }
        }
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
                        Decays::Synapse { input, recurrent, reset } => {
                            Decays::Synapse { input: c(input), recurrent: recurrent.as_ref().map(c), reset: G::of(reset.f64()) }
                        }
                        Decays::Neuron { rho, learnable } => Decays::Neuron { rho: c(rho), learnable: *learnable },
                    },
                    spiking: l.spiking.map(|s| super::layer::Spiking {
                        threshold: G::of(s.threshold.f64()),
                        activation: s.activation,
                        adaptation: s.adaptation.map(|a| super::layer::Adaptation { decay: G::of(a.decay.f64()), strength: G::of(a.strength.f64()) }),
                    }),
                })
                .collect(),
        }
    }
}
