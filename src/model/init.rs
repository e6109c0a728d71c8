//! Building a network from its description (model.md §2, §4): weights
//! `N(0, weight_scale^2 / fan_in)`, decays `exp(-dt / tau)` with `tau` drawn from the
//! layer's `tau_init`, in a fixed order from the given generator. The model kinds
//! and time-constant distributions are the model's own; the run config names
//! them (`config::ModelConfig::network_spec`).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::activation::{Activation, Surrogate};
use super::layer::{Adaptation, Decays, Layer, Spiking};
use super::network::Network;
use super::Float;

/// The neuron model family (model.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// One learnable decay per synapse; fixed reset decay `tau_reset`.
    Hetsynlif,
    /// One learnable decay per neuron.
    Hetneulif,
    /// One fixed decay per layer.
    Homneulif,
    /// One fixed decay per layer, with an adaptation current.
    Homneualif,
}

/// Distribution of initial time constants, seconds; decays are `exp(-dt/tau)`.
/// Models with one fixed decay per layer (HomNeu) use the distribution's mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
pub enum TauInit {
    Constant {
        value: f64,
    },
    /// Redrawn until positive.
    Normal {
        mean: f64,
        std: f64,
    },
    Uniform {
        low: f64,
        high: f64,
    },
}

impl TauInit {
    pub fn mean(&self) -> f64 {
        match *self {
            TauInit::Constant { value } => value,
            TauInit::Normal { mean, .. } => mean,
            TauInit::Uniform { low, high } => 0.5 * (low + high),
        }
    }
}

/// One hidden layer of a [`NetworkSpec`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerSpec {
    pub size: usize,
    /// Recurrent synapses from the layer's own spikes of the previous step.
    pub recurrent: bool,
    pub tau_init: TauInit,
}

/// Everything that fixes a network's architecture and initial draw.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSpec {
    pub kind: ModelKind,
    /// Step length, seconds.
    pub dt: f64,
    /// Firing threshold `theta`.
    pub threshold: f64,
    pub surrogate: Surrogate,
    /// Time constant of the reset current (HetSynLIF), seconds.
    pub tau_reset: f64,
    /// Adaptation time constant and strength `a` (HomNeuALIF).
    pub adaptation_tau: f64,
    pub adaptation_strength: f64,
    /// Weights are drawn `N(0, weight_scale^2 / fan_in)`.
    pub weight_scale: f64,
    /// Initial decays are clamped to `[decay_min, decay_max]`.
    pub decay_min: f64,
    pub decay_max: f64,
    pub layers: Vec<LayerSpec>,
    pub readout_tau_init: TauInit,
    /// A spiking readout (the spike-count loss) rather than a leaky one.
    pub spiking_readout: bool,
}

/// Draws one time constant, seconds (normal draws are repeated until positive).
pub fn draw_tau(init: &TauInit, rng: &mut ChaCha8Rng) -> f64 {
    match *init {
        TauInit::Constant { value } => value,
        TauInit::Normal { mean, std } => {
            let normal = Normal::new(mean, std).unwrap_or_else(|_| Normal::new(mean, 0.0).expect("zero std is valid"));
            loop {
                let tau = normal.sample(rng);
                if tau > 0.0 {
                    return tau;
                }
            }
        }
        TauInit::Uniform { low, high } => {
            if high > low {
                rng.gen_range(low..high)
            } else {
                low
            }
        }
    }
}

/// `exp(-dt / tau)` clamped to `[decay_min, decay_max]`.
pub fn decay_of(tau: f64, model: &NetworkSpec) -> f64 {
    (-model.dt / tau).exp().clamp(model.decay_min, model.decay_max)
}

fn weights<F: Float>(count: usize, fan_in: usize, scale: f64, rng: &mut ChaCha8Rng) -> Vec<F> {
    let normal = Normal::new(0.0, scale / (fan_in.max(1) as f64).sqrt()).expect("positive std");
    (0..count).map(|_| F::of(normal.sample(rng))).collect()
}

fn synapse_decays<F: Float>(count: usize, init: &TauInit, model: &NetworkSpec, rng: &mut ChaCha8Rng) -> Vec<F> {
    (0..count).map(|_| F::of(decay_of(draw_tau(init, rng), model))).collect()
}

/// Decays of one layer (or the readout) of `size` neurons with `inputs` inputs.
fn layer_decays<F: Float>(
    model: &NetworkSpec,
    init: &TauInit,
    size: usize,
    inputs: usize,
    recurrent: bool,
    rng: &mut ChaCha8Rng,
) -> Decays<F> {
    match model.kind {
        ModelKind::Hetsynlif => Decays::Synapse {
            input: synapse_decays(size * inputs, init, model, rng),
            recurrent: recurrent.then(|| synapse_decays(size * size, init, model, rng)),
            reset: F::of(decay_of(model.tau_reset, model)),
        },
        ModelKind::Hetneulif => Decays::Neuron { rho: synapse_decays(size, init, model, rng), learnable: true },
        ModelKind::Homneulif | ModelKind::Homneualif => {
            Decays::Neuron { rho: vec![F::of(decay_of(init.mean(), model)); size], learnable: false }
        }
    }
}

/// A fresh network for `inputs` channels and `outputs` readout neurons.
pub fn build<F: Float>(model: &NetworkSpec, inputs: usize, outputs: usize, rng: &mut ChaCha8Rng) -> Network<F> {
    let activation = Activation::Step(model.surrogate);
    let adaptation = (model.kind == ModelKind::Homneualif).then(|| Adaptation {
        decay: F::of((-model.dt / model.adaptation_tau).exp()),
        strength: F::of(model.adaptation_strength),
    });
    let mut layers = Vec::new();
    let mut fan_in = inputs;
    for spec in &model.layers {
        let init = &spec.tau_init;
        let input_weight = weights(spec.size * fan_in, fan_in, model.weight_scale, rng);
        let recurrent_weight =
            spec.recurrent.then(|| weights(spec.size * spec.size, spec.size, model.weight_scale, rng));
        let decays = layer_decays(model, init, spec.size, fan_in, spec.recurrent, rng);
        layers.push(Layer {
            inputs: fan_in,
            size: spec.size,
            input_weight,
            recurrent_weight,
            decays,
            spiking: Some(Spiking { threshold: F::of(model.threshold), activation, adaptation }),
        });
        fan_in = spec.size;
    }
    let init = &model.readout_tau_init;
    let input_weight = weights(outputs * fan_in, fan_in, model.weight_scale, rng);
    let decays = layer_decays(model, init, outputs, fan_in, false, rng);
    // the spike-count readout is a spiking layer (no recurrence, no adaptation)
    let spiking =
        model.spiking_readout.then_some(Spiking { threshold: F::of(model.threshold), activation, adaptation: None });
    layers.push(Layer { inputs: fan_in, size: outputs, input_weight, recurrent_weight: None, decays, spiking });
    Network { layers, dt: model.dt }
}
