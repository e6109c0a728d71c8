//! Decay masking (`model.frozen_decay_fraction`): a seeded choice of learnable
//! decays that keep their initial value for the whole run.
//!
//! In every learnable decay tensor (HetSyn per-synapse input, recurrent and
//! readout decays; HetNeu per-neuron decays) `round(fraction * len)` entries are
//! chosen uniformly without replacement, tensor by tensor in the order of
//! [`Network::params`], from stream [`STREAM_FREEZE`] of a ChaCha8 generator
//! seeded with `config.seed`. The choice depends on the config alone, so a
//! resumed run rebuilds the same mask. The trainer zeroes the gradient of frozen
//! entries (so they count neither in the non-finite check nor in the clipping
//! norm) and writes their initial value back after every optimizer step and
//! clamping, so neither Adam, weight decay nor clamping moves them.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::model::{Network, ParamKind};

/// ChaCha8 stream of the frozen-decay mask (seeded with the run seed).
pub const STREAM_FREEZE: u64 = 12;

/// The frozen entries of each learnable tensor, with their initial values.
#[derive(Debug, Clone, PartialEq)]
pub struct FrozenDecays {
    /// Per tensor of [`Network::params`]: sorted `(index, initial value)` pairs
    /// (empty for weights and for unfrozen tensors).
    tensors: Vec<Vec<(usize, f32)>>,
}

impl FrozenDecays {
    /// The mask of `config` over `initial`, the network the run starts from
    /// ([`crate::train::initial_network`]).
    pub fn new(config: &Config, initial: &Network<f32>) -> FrozenDecays {
        let fraction = config.model.frozen_decay_fraction;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(STREAM_FREEZE);
        let tensors = initial
            .params()
            .into_iter()
            .map(|(info, data)| {
                let count = (fraction * data.len() as f64).round() as usize;
                if info.kind != ParamKind::Decay || count == 0 {
                    return Vec::new();
                }
                let mut chosen = rand::seq::index::sample(&mut rng, data.len(), count).into_vec();
                chosen.sort_unstable();
                chosen.into_iter().map(|i| (i, data[i])).collect()
            })
            .collect();
        FrozenDecays { tensors }
    }

    /// Number of frozen entries in all tensors.
    pub fn count(&self) -> usize {
        self.tensors.iter().map(Vec::len).sum()
    }

    /// Frozen indices of tensor `k` (order of [`Network::params`]).
    pub fn indices(&self, k: usize) -> impl Iterator<Item = usize> + '_ {
        self.tensors.get(k).into_iter().flatten().map(|(i, _)| *i)
    }

    /// Sets the gradient of every frozen entry to 0.
    pub fn zero_gradients(&self, grads: &mut [&mut [f32]]) {
        for (g, frozen) in grads.iter_mut().zip(&self.tensors) {
            for &(i, _) in frozen {
                g[i] = 0.0;
            }
        }
    }

    /// Writes the initial value back into every frozen entry.
    pub fn restore(&self, params: &mut [&mut [f32]]) {
        for (p, frozen) in params.iter_mut().zip(&self.tensors) {
            for &(i, v) in frozen {
                p[i] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::initial_network;

    fn config(kind: &str, fraction: f64, seed: u64) -> Config {
        let text = format!(
            r#"
seed = {seed}
[model]
kind = "{kind}"
dt = 0.005
tau_init = {{ dist = "normal", mean = 0.04, std = 0.004 }}
frozen_decay_fraction = {fraction}
layers = [{{ size = 6, recurrent = true }}]
[model.readout]
loss = "last"
[task]
kind = "dms"
"#
        );
        Config::from_toml(&text, &[]).unwrap()
    }

    #[test]
    fn counts_per_tensor_and_reproducible() {
        let c = config("hetsynlif", 0.5, 1);
        let net = initial_network(&c, 30, 2);
        let a = FrozenDecays::new(&c, &net);
        assert_eq!(a, FrozenDecays::new(&c, &net), "the mask is a function of the config");
        for (k, (info, data)) in net.params().iter().enumerate() {
            let want = if info.kind == ParamKind::Decay { (data.len() as f64 * 0.5).round() as usize } else { 0 };
            assert_eq!(a.indices(k).count(), want, "{}", info.name);
        }
        // input 6x30, recurrent 6x6, readout 2x6 decays: 90 + 18 + 6
        assert_eq!(a.count(), 114);
        let other = FrozenDecays::new(&config("hetsynlif", 0.5, 2), &net);
        assert_ne!(a, other, "another seed freezes other synapses");
        assert_eq!(FrozenDecays::new(&config("hetsynlif", 0.0, 1), &net).count(), 0);
        // fraction 1 (Fig. 3C's last point): every learnable decay
        assert_eq!(FrozenDecays::new(&config("hetsynlif", 1.0, 1), &net).count(), 180 + 36 + 12);
        // per-neuron decays of hetneulif: 6 hidden + 2 readout, 0.5 of each
        let h = config("hetneulif", 0.5, 1);
        assert_eq!(FrozenDecays::new(&h, &initial_network(&h, 30, 2)).count(), 4);
        // homneulif has no learnable decay
        let f = config("homneulif", 0.5, 1);
        assert_eq!(FrozenDecays::new(&f, &initial_network(&f, 30, 2)).count(), 0);
    }

    #[test]
    fn zero_and_restore_touch_only_frozen_entries() {
        let c = config("hetsynlif", 0.3, 4);
        let net = initial_network(&c, 30, 2);
        let frozen = FrozenDecays::new(&c, &net);
        let mut moved = net.clone();
        moved.params_mut().iter_mut().for_each(|p| p.iter_mut().for_each(|v| *v += 0.5));
        let mut grads = net.zeros_like();
        grads.params_mut().iter_mut().for_each(|g| g.iter_mut().for_each(|v| *v = 1.0));
        frozen.zero_gradients(&mut grads.params_mut());
        frozen.restore(&mut moved.params_mut());
        for (k, ((p0, p1), g)) in net.params().iter().zip(moved.params()).zip(grads.params()).enumerate() {
            let set: Vec<usize> = frozen.indices(k).collect();
            for i in 0..p0.1.len() {
                let is_frozen = set.binary_search(&i).is_ok();
                assert_eq!(p1.1[i] == p0.1[i], is_frozen, "tensor {k} entry {i}");
                assert_eq!(g.1[i] == 0.0, is_frozen, "tensor {k} entry {i}");
            }
        }
    }
}
