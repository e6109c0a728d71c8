//! The tensors of a network, walked in one place. [`Network::state`] lists
//! every tensor a checkpoint saves, with its name ([`param_name`]) and how it
//! holds the layer's numbers ([`Storage`]); [`Network::load_state`] sets them
//! back. Every walker of the learnable ones (optimizer steps, gradient sums,
//! clamping, decay masking, time-constant statistics) goes through
//! [`Network::params`] or [`Network::params_mut`]. All of them list a layer's
//! tensors through one [`Parts`] value in the order of [`Parts::into_vec`]; a
//! new kind of parameter is one field of [`Parts`].

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
        format!("{}.{}", layer_name(l, layers), part.suffix().trim_start_matches("input."))
    } else {
        format!("{}.{}", layer_name(l, layers), part.suffix())
    }
}

/// The name of layer `l` of `layers`: `hidden.<l>`, or `readout` for the last.
pub fn layer_name(l: usize, layers: usize) -> String {
    if l + 1 == layers {
        "readout".to_string()
    } else {
        format!("hidden.{l}")
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

/// How a saved tensor holds a layer's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// A learnable tensor of the layer's own.
    Learnable,
    /// The layer's one fixed value (HomNeu decays), saved as a scalar.
    Fixed,
    /// The numbers of another part, saved again under this part's name: a
    /// neuron-level layer's one decay per neuron serves its recurrent synapses
    /// too (model.md §2).
    Copy(Part),
}

/// One saved tensor of a network ([`Network::state`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored<'a, F> {
    /// Its layer (the readout is the last).
    pub layer: usize,
    pub part: Part,
    /// Name, kind and saved shape.
    pub info: ParamInfo,
    pub storage: Storage,
    pub data: &'a [F],
}

impl<F> Stored<'_, F> {
    /// Whether training changes it (it is one of [`Network::params`]).
    pub fn learnable(&self) -> bool {
        self.storage == Storage::Learnable
    }
}

/// Why [`Network::load_state`] refused a tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum StateError {
    Missing(String),
    Shape {
        name: String,
        found: Vec<usize>,
        want: Vec<usize>,
    },
    NonFinite(String),
    /// A [`Storage::Copy`] that differs from its original.
    Differs {
        name: String,
        original: String,
    },
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::Missing(name) => write!(f, "tensor `{name}` is missing (another architecture?)"),
            StateError::Shape { name, found, want } => {
                write!(f, "tensor `{name}` has shape {found:?}, but the config's architecture needs {want:?}")
            }
            StateError::NonFinite(name) => write!(f, "tensor `{name}` holds non-finite values"),
            StateError::Differs { name, original } => {
                write!(f, "tensor `{name}` differs from `{original}`; a neuron-level model has one decay per neuron")
            }
        }
    }
}

impl std::error::Error for StateError {}

impl<F: Float> Layer<F> {
    /// The saved tensors in the order of [`Parts::into_vec`]. HetSyn's
    /// recurrent decays exist with the recurrent weights only; a neuron-level
    /// layer's decays are learnable (HetNeu) or one fixed value (HomNeu), and
    /// serve its recurrent synapses too.
    fn stored(&self) -> Vec<(Part, Storage, &[F])> {
        fn learnable<F>(data: &[F]) -> (Storage, &[F]) {
            (Storage::Learnable, data)
        }
        let (input_decay, recurrent_decay) = match &self.decays {
            Decays::Synapse { input, recurrent, .. } => {
                (learnable(input), recurrent.as_deref().filter(|_| self.is_recurrent()).map(learnable))
            }
            Decays::Neuron { rho, learnable: true } => {
                (learnable(rho), self.is_recurrent().then_some((Storage::Copy(Part::InputDecay), &rho[..])))
            }
            Decays::Neuron { rho, learnable: false } => {
                let fixed = &rho[..1];
                ((Storage::Fixed, fixed), self.is_recurrent().then_some((Storage::Copy(Part::InputDecay), fixed)))
            }
        };
        Parts {
            input_weight: learnable(&self.input_weight),
            input_decay: Some(input_decay),
            recurrent_weight: self.recurrent_weight.as_deref().map(learnable),
            recurrent_decay,
        }
        .into_vec()
        .into_iter()
        .map(|(part, (storage, data))| (part, storage, data))
        .collect()
    }

    /// The learnable tensors: those of [`Layer::stored`] that are [`Storage::Learnable`].
    pub fn params(&self) -> Vec<(Part, &[F])> {
        self.stored()
            .into_iter()
            .filter(|(_, storage, _)| *storage == Storage::Learnable)
            .map(|(p, _, d)| (p, d))
            .collect()
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
    /// Every tensor a checkpoint saves, layer by layer in the order of
    /// [`Parts::into_vec`], with its name ([`param_name`]).
    pub fn state(&self) -> Vec<Stored<'_, F>> {
        let layers = self.layers.len();
        let mut out: Vec<Stored<'_, F>> = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let first = out.len();
            for (part, storage, data) in layer.stored() {
                let shape = match storage {
                    Storage::Learnable => layer.part_shape(part),
                    Storage::Fixed => Vec::new(),
                    Storage::Copy(of) => out[first..]
                        .iter()
                        .find(|s| s.part == of)
                        .expect("a copy follows its original")
                        .info
                        .shape
                        .clone(),
                };
                let info = ParamInfo { name: param_name(l, layers, part), kind: part.kind(), shape };
                out.push(Stored { layer: l, part, info, storage, data });
            }
        }
        out
    }

    /// Sets every tensor of [`Network::state`] from `tensor(name)`, its shape
    /// and values: the shape must be the saved one, the values finite, and a
    /// [`Storage::Copy`] equal to its original.
    pub fn load_state(
        &mut self,
        mut tensor: impl FnMut(&str) -> Option<(Vec<usize>, Vec<F>)>,
    ) -> Result<(), StateError> {
        let layers = self.layers.len();
        let saved: Vec<(usize, Part, Storage, ParamInfo)> =
            self.state().into_iter().map(|s| (s.layer, s.part, s.storage, s.info)).collect();
        for (l, part, storage, ParamInfo { name, shape: want, .. }) in saved {
            let Some((found, data)) = tensor(&name) else { return Err(StateError::Missing(name)) };
            if found != want {
                return Err(StateError::Shape { name, found, want });
            }
            let layer = &mut self.layers[l];
            match storage {
                Storage::Copy(of) => {
                    let stored = layer.stored();
                    let original = stored.iter().find(|(p, _, _)| *p == of).expect("a copy has its original").2;
                    if original != &data[..] {
                        return Err(StateError::Differs { name, original: param_name(l, layers, of) });
                    }
                }
                _ if data.iter().any(|v| !v.is_finite()) => return Err(StateError::NonFinite(name)),
                Storage::Learnable => {
                    let mut params = layer.params_mut();
                    let values = &mut params.iter_mut().find(|(p, _)| *p == part).expect("a learnable part").1;
                    values.copy_from_slice(&data);
                }
                Storage::Fixed => match &mut layer.decays {
                    Decays::Neuron { rho, .. } => rho.fill(data[0]),
                    Decays::Synapse { .. } => unreachable!("per-synapse decays are learnable"),
                },
            }
        }
        Ok(())
    }

    /// The learnable tensors: those of [`Network::state`] that are [`Storage::Learnable`].
    pub fn params(&self) -> Vec<(ParamInfo, &[F])> {
        self.state().into_iter().filter(Stored::learnable).map(|s| (s.info, s.data)).collect()
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
        network_seeded(kind, 1)
    }

    fn network_seeded(kind: ModelKind, seed: u64) -> Network<f64> {
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
        build(&spec, 4, 2, &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed))
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

    /// The saved tensors of a neuron-level network: the learnable ones, a fixed
    /// decay as a scalar, and a recurrent layer's decays again under
    /// `recurrent.decay`; they load back into a network of another draw.
    #[test]
    fn the_state_lists_every_saved_tensor_and_loads_back() {
        use Storage::{Copy, Fixed, Learnable};
        /// Changes a tensor's shape or values; `false`: leaves it out.
        type Change<'a> = &'a dyn Fn(&str, &mut Vec<usize>, &mut Vec<f64>) -> bool;
        let copy = Copy(Part::InputDecay);
        for (kind, want) in [
            (
                ModelKind::Hetneulif,
                &[
                    ("hidden.0.input.weight", vec![3, 4], Learnable),
                    ("hidden.0.input.decay", vec![3], Learnable),
                    ("hidden.0.recurrent.weight", vec![3, 3], Learnable),
                    ("hidden.0.recurrent.decay", vec![3], copy),
                    ("hidden.1.input.weight", vec![2, 3], Learnable),
                    ("hidden.1.input.decay", vec![2], Learnable),
                    ("readout.weight", vec![2, 2], Learnable),
                    ("readout.decay", vec![2], Learnable),
                ][..],
            ),
            (
                ModelKind::Homneualif,
                &[
                    ("hidden.0.input.weight", vec![3, 4], Learnable),
                    ("hidden.0.input.decay", vec![], Fixed),
                    ("hidden.0.recurrent.weight", vec![3, 3], Learnable),
                    ("hidden.0.recurrent.decay", vec![], copy),
                    ("hidden.1.input.weight", vec![2, 3], Learnable),
                    ("hidden.1.input.decay", vec![], Fixed),
                    ("readout.weight", vec![2, 2], Learnable),
                    ("readout.decay", vec![], Fixed),
                ][..],
            ),
        ] {
            let net = network_seeded(kind, 1);
            let state = net.state();
            let listed: Vec<_> =
                state.iter().map(|s| (s.info.name.as_str(), s.info.shape.clone(), s.storage)).collect();
            assert_eq!(listed, want, "{kind:?}");
            let learnable: Vec<String> = state.iter().filter(|s| s.learnable()).map(|s| s.info.name.clone()).collect();
            let params: Vec<String> = net.params().into_iter().map(|(info, _)| info.name).collect();
            assert_eq!(learnable, params, "{kind:?}: the learnable ones are the params");

            let saved: Vec<(String, Vec<usize>, Vec<f64>)> =
                state.iter().map(|s| (s.info.name.clone(), s.info.shape.clone(), s.data.to_vec())).collect();
            let load = |change: Change<'_>| {
                let mut other = network_seeded(kind, 2);
                let result = other.load_state(|name| {
                    let (_, shape, data) = saved.iter().find(|(n, _, _)| n == name)?;
                    let (mut shape, mut data) = (shape.clone(), data.clone());
                    change(name, &mut shape, &mut data).then_some((shape, data))
                });
                result.map(|()| other)
            };
            assert!(network_seeded(kind, 2) != net);
            assert_eq!(load(&|_, _, _| true), Ok(net.clone()), "{kind:?}");
            let error = |name: &str, change: &dyn Fn(&mut Vec<usize>, &mut Vec<f64>) -> bool| {
                load(&|n, shape, data| n != name || change(shape, data)).unwrap_err()
            };
            let name = "hidden.0.recurrent.decay".to_string();
            let original = "hidden.0.input.decay".to_string();
            assert_eq!(error(&name, &|_, _| false), StateError::Missing(name.clone()));
            assert_eq!(
                error(&name, &|_, d| {
                    d[0] += 0.01;
                    true
                }),
                StateError::Differs { name: name.clone(), original: original.clone() }
            );
            assert!(matches!(
                error(&original, &|s, _| {
                    s.push(1);
                    true
                }),
                StateError::Shape { .. }
            ));
            assert_eq!(
                error(&original, &|_, d| {
                    d[0] = f64::NAN;
                    true
                }),
                StateError::NonFinite(original.clone())
            );
        }
    }
}
