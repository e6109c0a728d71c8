//! The network: hidden layers and the readout, one sample's forward pass and
//! reverse sweep (batches are [`super::batch`]'s).

use super::layer::{Decays, Layer, LayerInput, LayerTape, Prepared, SampleGrad};
use super::Float;

/// A stack of layers: `layers[..L-1]` hidden, `layers[L-1]` the leaky readout.
#[derive(Debug, Clone, PartialEq)]
pub struct Network<F> {
    pub(super) layers: Vec<Layer<F>>,
    /// Step length, seconds (for firing rates).
    pub(super) dt: f64,
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

/// One sample of a group's reverse sweep ([`Network::backward_prepared`]).
pub struct SampleReverse<'a, F> {
    /// The sample's input, as in its forward pass.
    pub input: LayerInput<'a, F>,
    pub tape: &'a Tape<F>,
    /// `dL/dy^t` of the readout trace ([`Network::output`]), `[steps, outputs]`.
    pub d_output: Vec<F>,
}

impl<F: Float> Network<F> {
    /// Hidden layers and the readout, `dt` seconds per step; panics unless each
    /// layer reads the one below (the first reads the data).
    pub fn new(layers: Vec<Layer<F>>, dt: f64) -> Self {
        assert!(!layers.is_empty(), "a network has at least its readout");
        for pair in layers.windows(2) {
            assert_eq!(pair[1].inputs, pair[0].size, "each layer reads the one below");
        }
        Network { layers, dt }
    }

    /// Hidden layers, then the readout.
    pub fn layers(&self) -> &[Layer<F>] {
        &self.layers
    }

    /// Layer `l` (the readout is the last), to change its learnable tensors
    /// ([`Layer::params_mut`]).
    pub fn layer_mut(&mut self, l: usize) -> &mut Layer<F> {
        &mut self.layers[l]
    }

    /// Step length, seconds.
    pub fn dt(&self) -> f64 {
        self.dt
    }

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
        let mut tape = Tape { layers: Vec::with_capacity(self.layers.len()), masks, emitted: Vec::new() };
        for (l, layer) in self.layers.iter().enumerate() {
            let mut record = LayerTape::default();
            layer.forward_prepared(&prepared[l], Self::layer_input(input, &tape, l), steps, &mut record);
            if !tape.masks.is_empty() && l + 1 < self.layers.len() {
                let emitted = record.spikes.iter().zip(&tape.masks[l]).map(|(z, m)| *z * *m).collect();
                tape.emitted.push(emitted);
            }
            tape.layers.push(record);
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
        let sample = SampleReverse { input: input.into(), tape, d_output };
        self.backward_prepared(&self.prepare(), vec![sample], steps, rate_grad, grad)
    }

    /// [`Network::backward`] for a group of samples, with the layers prepared by
    /// [`Network::prepare`]: each layer takes the whole group
    /// ([`Layer::backward_prepared`]), and every gradient receives the samples'
    /// terms in the group's order, as if they came one after the other.
    pub fn backward_prepared(
        &self,
        prepared: &[Prepared<F>],
        samples: Vec<SampleReverse<'_, F>>,
        steps: usize,
        rate_grad: Option<&[Vec<F>]>,
        grad: &mut Network<F>,
    ) {
        assert_eq!(prepared.len(), self.layers.len(), "prepared for another network");
        let (inputs, tapes): (Vec<_>, Vec<_>) = samples.iter().map(|s| (s.input, s.tape)).unzip();
        let mut d_out: Vec<Vec<F>> = samples.into_iter().map(|s| s.d_output).collect();
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let mut d_inputs: Vec<Option<Vec<F>>> =
                tapes.iter().map(|_| (l > 0).then(|| vec![F::zero(); steps * layer.inputs])).collect();
            let rate = rate_grad.and_then(|r| r.get(l)).map(|v| &v[..]);
            let rate = if layer.spiking.is_some() { rate } else { None };
            let mut group: Vec<SampleGrad<'_, F>> = inputs
                .iter()
                .zip(&tapes)
                .zip(d_out.iter_mut().zip(d_inputs.iter_mut()))
                .map(|((input, tape), (d_output, d_input))| SampleGrad {
                    input: Self::layer_input(*input, tape, l),
                    tape: &tape.layers[l],
                    d_output,
                    d_input: d_input.as_deref_mut(),
                })
                .collect();
            layer.backward_prepared(&prepared[l], &mut group, steps, rate, &mut grad.layers[l]);
            drop(group);
            for ((tape, d_out), d_input) in tapes.iter().zip(d_out.iter_mut()).zip(d_inputs) {
                if let Some(mut d) = d_input {
                    if !tape.masks.is_empty() {
                        for (d, m) in d.iter_mut().zip(&tape.masks[l - 1]) {
                            *d *= *m;
                        }
                    }
                    *d_out = d;
                }
            }
        }
    }

    /// The input of layer `l` in a sample's forward pass.
    fn layer_input<'a>(input: LayerInput<'a, F>, tape: &'a Tape<F>, l: usize) -> LayerInput<'a, F> {
        if l == 0 {
            input
        } else if tape.masks.is_empty() {
            LayerInput::Dense(&tape.layers[l - 1].spikes)
        } else {
            LayerInput::Dense(&tape.emitted[l - 1])
        }
    }

    /// Applies the weight factor of the per-synapse decay gradients (once per batch).
    pub fn finish_gradient(&self, grad: &mut Network<F>) {
        for (layer, g) in self.layers.iter().zip(&mut grad.layers) {
            layer.finish_gradient(g);
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
