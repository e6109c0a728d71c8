//! Building a network from the config (model.md §2, §4): weights
//! `N(0, weight_scale^2 / fan_in)`, decays `exp(-dt / tau)` with `tau` drawn from the
//! layer's `tau_init`, in a fixed order from the run's seeded generator.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::activation::Activation;
use super::layer::{Adaptation, Decays, Layer, Spiking};
use super::network::Network;
use super::Float;
use crate::config::{ModelConfig, ModelKind, TauInit};
use crate::model::LossKind;

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
pub fn decay_of(tau: f64, model: &ModelConfig) -> f64 {
    (-model.dt / tau).exp().clamp(model.decay_min, model.decay_max)
}

fn weights<F: Float>(count: usize, fan_in: usize, scale: f64, rng: &mut ChaCha8Rng) -> Vec<F> {
    let normal = Normal::new(0.0, scale / (fan_in.max(1) as f64).sqrt()).expect("positive std");
    (0..count).map(|_| F::of(normal.sample(rng))).collect()
}

fn synapse_decays<F: Float>(count: usize, init: &TauInit, model: &ModelConfig, rng: &mut ChaCha8Rng) -> Vec<F> {
    (0..count).map(|_| F::of(decay_of(draw_tau(init, rng), model))).collect()
}

/// Decays of one layer (or the readout) of `size` neurons with `inputs` inputs.
fn layer_decays<F: Float>(
    model: &ModelConfig,
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
pub fn build<F: Float>(model: &ModelConfig, inputs: usize, outputs: usize, rng: &mut ChaCha8Rng) -> Network<F> {
    let activation = Activation::Step(model.surrogate);
    let adaptation = (model.kind == ModelKind::Homneualif).then(|| Adaptation {
        decay: F::of((-model.dt / model.adaptation_tau).exp()),
        strength: F::of(model.adaptation_strength),
    });
    let mut layers = Vec::new();
    let mut fan_in = inputs;
    for spec in &model.layers {
        let init = spec.tau_init.as_ref().unwrap_or(&model.tau_init);
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
    let init = model.readout.tau_init.as_ref().unwrap_or(&model.tau_init);
    let input_weight = weights(outputs * fan_in, fan_in, model.weight_scale, rng);
    let decays = layer_decays(model, init, outputs, fan_in, false, rng);
    // the spike-count readout is a spiking layer (no recurrence, no adaptation)
    let spiking = (model.readout.loss == LossKind::SpikeCount).then_some(Spiking {
        threshold: F::of(model.threshold),
        activation,
        adaptation: None,
    });
    layers.push(Layer { inputs: fan_in, size: outputs, input_weight, recurrent_weight: None, decays, spiking });
    Network { layers, dt: model.dt }
}
