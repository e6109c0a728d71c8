//! The learnable tensors of a network, walked in one place. Every walker
//! (optimizer steps, gradient sums, clamping, decay masking, checkpoints, time-
//! constant statistics) goes through [`Network::params`] or
//! [`Network::params_mut`], which list a layer's tensors through one
//! [`Parts`] value in the order of [`Parts::into_vec`], and names them with
//! [`param_name`]. A new kind of parameter is one field of [`Parts`].

use super::layer::{Decays, Layer};
use super::network::Network;
use super::Float;

/// What a parameter is, for optimizers (learning rates, clamping) and checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Weight,
    Decay,
}

/// One learnable tensor of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `w_ji`, `[size, inputs]`.
    InputWeight,
    /// `r_ji`, `[size, inputs]` (HetSyn), or `rho_j`, `[size]` (HetNeu).
    InputDecay,
    /// `u_jk`, `[size, size]`.
    RecurrentWeight,
    /// `q_jk`, `[size, size]` (HetSyn).
    RecurrentDecay,
}

impl Part {
    pub fn kind(self) -> ParamKind {
        match self {
            Part::InputWeight | Part::RecurrentWeight => ParamKind::Weight,
            Part::InputDecay | Part::RecurrentDecay => ParamKind::Decay,
        }
    }

    /// The name's suffix: `input.weight`, `input.decay`, `recurrent.weight`, `recurrent.decay`.
    pub fn suffix(self) -> &'static str {
        match self {
            Part::InputWeight => "input.weight",
            Part::InputDecay => "input.decay",
            Part::RecurrentWeight => "recurrent.weight",
            Part::RecurrentDecay => "recurrent.decay",
        }
    }
}

/// Name (`docs/checkpoint.md`), kind and shape of a learnable tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    pub name: String,
    pub kind: ParamKind,
    pub shape: Vec<usize>,
}

/// The name of part `part` of layer `l` in a network of `layers` layers:
/// `hidden.<l>.<part>` for hidden layers, `readout.weight` and `readout.decay`
/// for the readout (which has no recurrent part).
pub fn param_name(l: usize, layers: usize, part: Part) -> String {
    if l + 1 == layers {
        format!("readout.{}", part.suffix().trim_start_matches("input."))
    } else {
        format!("hidden.{l}.{}", part.suffix())
    }
}

/// A layer's learnable tensors, one field per [`Part`] (`None`: the layer has
/// no such learnable tensor).
struct Parts<T> {
    input_weight: T,
    input_decay: Option<T>,
    recurrent_weight: Option<T>,
    recurrent_decay: Option<T>,
}

impl<T> Parts<T> {
    /// The order of every walk: input weight, input decay, recurrent weight, recurrent decay.
    fn into_vec(self) -> Vec<(Part, T)> {
        let mut out = vec![(Part::InputWeight, self.input_weight)];
        out.extend(self.input_decay.map(|t| (Part::InputDecay, t)));
        out.extend(self.recurrent_weight.map(|t| (Part::RecurrentWeight, t)));
        out.extend(self.recurrent_decay.map(|t| (Part::RecurrentDecay, t)));
        out
    }
}

impl<F: Float> Layer<F> {
    /// The learnable tensors in the order of [`Parts::into_vec`]. Fixed decays
    /// (HomNeu) are not learnable; HetSyn's recurrent decays exist with the
    /// recurrent weights only.
    pub fn params(&self) -> Vec<(Part, &[F])> {
        let (input_decay, recurrent_decay) = match &self.decays {
            Decays::Synapse { input, recurrent, .. } => {
                (Some(&input[..]), recurrent.as_deref().filter(|_| self.recurrent_weight.is_some()))
            }
            Decays::Neuron { rho, learnable } => (learnable.then_some(&rho[..]), None),
        };
        Parts {
            input_weight: &self.input_weight[..],
            input_decay,
            recurrent_weight: self.recurrent_weight.as_deref(),
            recurrent_decay,
        }
        .into_vec()
    }

    /// Mutable views of the tensors of [`Layer::params`], in the same order.
    pub fn params_mut(&mut self) -> Vec<(Part, &mut [F])> {
        let has_recurrent = self.recurrent_weight.is_some();
        let (input_decay, recurrent_decay) = match &mut self.decays {
            Decays::Synapse { input, recurrent, .. } => {
                (Some(&mut input[..]), recurrent.as_deref_mut().filter(|_| has_recurrent))
            }
            Decays::Neuron { rho, learnable } => (learnable.then_some(&mut rho[..]), None),
        };
        Parts {
            input_weight: &mut self.input_weight[..],
            input_decay,
            recurrent_weight: self.recurrent_weight.as_deref_mut(),
            recurrent_decay,
        }
        .into_vec()
    }

    /// Shape of a part: weights and per-synapse decays `[size, inputs]` or
    /// `[size, size]`, per-neuron decays `[size]`.
    pub fn part_shape(&self, part: Part) -> Vec<usize> {
        match (part, &self.decays) {
            (Part::InputDecay, Decays::Neuron { .. }) => vec![self.size],
            (Part::InputWeight | Part::InputDecay, _) => vec![self.size, self.inputs],
            (Part::RecurrentWeight | Part::RecurrentDecay, _) => vec![self.size, self.size],
        }
    }
}

impl<F: Float> Network<F> {
    /// The learnable tensors, layer by layer in the order of [`Layer::params`],
    /// with their checkpoint names ([`param_name`]).
    pub fn params(&self) -> Vec<(ParamInfo, &[F])> {
        let layers = self.layers.len();
        let mut out = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            for (part, data) in layer.params() {
                let info =
                    ParamInfo { name: param_name(l, layers, part), kind: part.kind(), shape: layer.part_shape(part) };
                out.push((info, data));
            }
        }
        out
    }

    /// Mutable views of the tensors of [`Network::params`], in the same order.
    pub fn params_mut(&mut self) -> Vec<&mut [F]> {
        self.layers.iter_mut().flat_map(|layer| layer.params_mut().into_iter().map(|(_, data)| data)).collect()
    }

    /// Mutable views of the learnable decays (clamping, resetting), with their names.
    pub fn decays_mut(&mut self) -> Vec<(String, &mut [F])> {
        let layers = self.layers.len();
        let mut out = Vec::new();
        for (l, layer) in self.layers.iter_mut().enumerate() {
            for (part, data) in layer.params_mut() {
                if part.kind() == ParamKind::Decay {
                    out.push((param_name(l, layers, part), data));
                }
            }
        }
        out
    }

    /// `self += other`, tensor by tensor over [`Network::params`] (same architecture).
    pub fn add_assign(&mut self, other: &Network<F>) {
        let other = other.params();
        let mine = self.params_mut();
        assert_eq!(mine.len(), other.len(), "add_assign of networks of different architectures");
        for (a, (_, b)) in mine.into_iter().zip(other) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += *y;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::init::{build, LayerSpec, ModelKind, NetworkSpec, TauInit};
    use crate::model::Surrogate;
    use rand::SeedableRng;

    fn network(kind: ModelKind) -> Network<f64> {
        let tau_init = TauInit::Uniform { low: 0.005, high: 0.05 };
        let spec = NetworkSpec {
            kind,
            dt: 1e-3,
            threshold: 1.0,
            surrogate: Surrogate::MultiGaussian,
            tau_reset: 0.02,
            adaptation_tau: 0.5,
            adaptation_strength: 0.1,
            weight_scale: 1.0,
            decay_min: 0.0,
            decay_max: 1.0,
            layers: vec![
                LayerSpec { size: 3, recurrent: true, tau_init },
                LayerSpec { size: 2, recurrent: false, tau_init },
            ],
            readout_tau_init: tau_init,
            spiking_readout: false,
        };
        build(&spec, 4, 2, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1))
    }

    #[test]
    fn params_and_params_mut_list_the_same_tensors() {
        for (kind, names) in [
            (
                ModelKind::Hetsynlif,
                &[
                    "hidden.0.input.weight",
                    "hidden.0.input.decay",
                    "hidden.0.recurrent.weight",
                    "hidden.0.recurrent.decay",
                    "hidden.1.input.weight",
                    "hidden.1.input.decay",
                    "readout.weight",
                    "readout.decay",
                ][..],
            ),
            (
                ModelKind::Hetneulif,
                &[
                    "hidden.0.input.weight",
                    "hidden.0.input.decay",
                    "hidden.0.recurrent.weight",
                    "hidden.1.input.weight",
                    "hidden.1.input.decay",
                    "readout.weight",
                    "readout.decay",
                ][..],
            ),
            (
                ModelKind::Homneualif,
                &["hidden.0.input.weight", "hidden.0.recurrent.weight", "hidden.1.input.weight", "readout.weight"][..],
            ),
        ] {
            let mut net = network(kind);
            let listed: Vec<(String, Vec<usize>, Vec<f64>)> =
                net.params().into_iter().map(|(info, data)| (info.name, info.shape, data.to_vec())).collect();
            assert_eq!(listed.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), names, "{kind:?}");
            for (name, shape, data) in &listed {
                assert_eq!(data.len(), shape.iter().product::<usize>(), "{name}");
            }
            let mutable: Vec<Vec<f64>> = net.params_mut().into_iter().map(|d| d.to_vec()).collect();
            assert_eq!(mutable, listed.iter().map(|p| p.2.clone()).collect::<Vec<_>>(), "{kind:?}: same order");
            let decays: Vec<String> = net.decays_mut().into_iter().map(|(name, _)| name).collect();
            let want: Vec<&str> = names.iter().copied().filter(|n| n.ends_with("decay")).collect();
            assert_eq!(decays, want);
        }
    }

    #[test]
    fn add_assign_adds_every_learnable_tensor() {
        let net = network(ModelKind::Hetsynlif);
        let mut twice = net.clone();
        twice.add_assign(&net);
        for ((_, a), (_, b)) in twice.params().into_iter().zip(net.params()) {
            assert!(a.iter().zip(b).all(|(x, y)| *x == 2.0 * y));
        }
    }
}
