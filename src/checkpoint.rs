//! Checkpoints (`docs/checkpoint.md`): one safetensors file holding the
//! network's tensors by name, optionally the Adam moments, and the resolved
//! config, step, epoch and metrics as metadata, so a checkpoint alone rebuilds
//! the model; checksums of all of it let a damaged file be refused.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::io::checksum::Integrity;
use crate::io::safetensors_file::{read_checked, write_file, NamedTensor};
use crate::config::Config;
use crate::model::{init, param_name, Network, Part};
use crate::provenance;

pub const FORMAT: &str = "hetsyn-checkpoint/1";

/// What a checkpoint holds besides the tensors.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub config: Config,
    pub network: Network<f32>,
    /// Optimizer steps taken.
    pub step: u64,
    /// Epochs completed (iterations, for trial-based tasks).
    pub epoch: u64,
    /// The metrics logged for this checkpoint.
    pub metrics: serde_json::Value,
    /// The optimizer's state, when saved.
    pub optimizer: Option<OptimizerState>,
    /// The trainer's state for resuming (JSON), in checkpoints written for that.
    pub trainer_state: Option<String>,
    /// The figure this model was selected on (metadata `selected_on`, e.g.
    /// `validation_accuracy` or `test_accuracy`); `None` for `last.safetensors`
    /// and files of earlier versions.
    pub selected_on: Option<String>,
    /// Whether the file's checksums were verified (files of earlier versions have none).
    pub integrity: Integrity,
}

/// Adam's state as a checkpoint stores it (tensors `adam.m.<name>`,
/// `adam.v.<name>`, metadata `adam_step`).
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState {
    /// Steps taken (the `t` of the last bias correction).
    pub step: u64,
    /// First and second moments, one buffer per tensor in the order of `Network::params`.
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
}

/// What a resumable checkpoint carries besides the model.
#[derive(Debug, Clone, Copy)]
pub struct ResumeData<'a> {
    pub optimizer: &'a OptimizerState,
    /// The trainer's state as JSON (metadata `trainer_state`).
    pub trainer_state: &'a str,
}

/// What a checkpoint is, besides the model.
#[derive(Debug, Clone, Copy)]
pub enum Role<'a> {
    /// A model selected on this figure (metadata `selected_on`: `validation_accuracy`,
    /// `validation_loss`, `test_accuracy`, `test_loss`).
    Selected(&'a str),
    /// The latest model, with what `--resume` needs.
    Resumable(ResumeData<'a>),
}

/// The network's saved tensors ([`Network::state`]) as a checkpoint stores them.
pub fn network_tensors(net: &Network<f32>) -> Vec<NamedTensor> {
    net.state()
        .into_iter()
        .map(|stored| NamedTensor { name: stored.info.name, shape: stored.info.shape, data: stored.data.to_vec() })
        .collect()
}

/// Writes a checkpoint atomically.
pub fn save(
    path: &Path,
    net: &Network<f32>,
    config: &Config,
    step: u64,
    epoch: u64,
    metrics: &serde_json::Value,
    role: Role<'_>,
) -> Result<()> {
    let mut tensors = network_tensors(net);
    let mut metadata = BTreeMap::new();
    metadata.insert("format".to_string(), FORMAT.to_string());
    metadata.insert("config".to_string(), config.to_toml()?);
    metadata.insert("step".to_string(), step.to_string());
    metadata.insert("epoch".to_string(), epoch.to_string());
    metadata.insert("metrics".to_string(), metrics.to_string());
    metadata.extend(provenance::Provenance::current().entries().map(|(key, value)| (key.to_string(), value)));
    if let Role::Selected(figure) = role {
        metadata.insert("selected_on".to_string(), figure.to_string());
    }
    if let Role::Resumable(ResumeData { optimizer, trainer_state }) = role {
        metadata.insert("trainer_state".to_string(), trainer_state.to_string());
        metadata.insert("adam_step".to_string(), optimizer.step.to_string());
        for ((info, _), (m, v)) in net.params().iter().zip(optimizer.m.iter().zip(&optimizer.v)) {
            tensors.push(NamedTensor {
                name: format!("adam.m.{}", info.name),
                shape: info.shape.clone(),
                data: m.clone(),
            });
            tensors.push(NamedTensor {
                name: format!("adam.v.{}", info.name),
                shape: info.shape.clone(),
                data: v.clone(),
            });
        }
    }
    write_file(path, &tensors, &metadata).with_context(|| format!("cannot write checkpoint {}", path.display()))
}

/// Reads a checkpoint, verifies its checksums, and rebuilds its network from
/// the config it carries, checking every tensor's name and shape against that
/// architecture.
pub fn load(path: &Path) -> Result<Checkpoint> {
    let (tensors, metadata, integrity) = read_checked(path)?;
    let at = || format!("checkpoint {}", path.display());
    let meta = |key: &str| {
        metadata.get(key).ok_or_else(|| anyhow!("{}: metadata key `{key}` is missing (not a hetsyn checkpoint?)", at()))
    };
    let format = meta("format")?;
    if format != FORMAT {
        bail!("{}: format {format:?} is not {FORMAT:?}", at());
    }
    let config =
        Config::from_toml(meta("config")?, &[]).with_context(|| format!("{}: the stored config is invalid", at()))?;
    let number = |key: &str| -> Result<u64> {
        let v = meta(key)?;
        v.parse().map_err(|_| anyhow!("{}: metadata `{key}` = {v:?} is not a whole number", at()))
    };
    let step = number("step")?;
    let epoch = number("epoch")?;
    let metrics = match metadata.get("metrics") {
        Some(m) => serde_json::from_str(m).with_context(|| format!("{}: metadata `metrics` is not JSON", at()))?,
        None => serde_json::Value::Null,
    };

    let mut by_name: BTreeMap<String, NamedTensor> = tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
    let take = |name: &str, shape: &[usize], by_name: &mut BTreeMap<String, NamedTensor>| -> Result<Vec<f32>> {
        let t = by_name
            .remove(name)
            .ok_or_else(|| anyhow!("{}: tensor `{name}` is missing (another architecture?)", at()))?;
        if t.shape != shape {
            bail!("{}: tensor `{name}` has shape {:?}, but the config's architecture needs {:?}", at(), t.shape, shape);
        }
        Ok(t.data)
    };
    // the architecture: inputs and outputs from the outermost weights, the rest from the config
    let layers = config.model.layers.len() + 1;
    let weight_name = |l: usize| param_name(l, layers, Part::InputWeight);
    let weight = |l: usize| {
        let name = weight_name(l);
        by_name.get(&name).ok_or_else(|| anyhow!("{}: tensor `{name}` is missing", at()))
    };
    let (first, readout) = (weight(0)?, weight(layers - 1)?);
    let (inputs, outputs) = match (first.shape.as_slice(), readout.shape.as_slice()) {
        ([_, i], [o, _]) => (*i, *o),
        _ => bail!("{}: weights must be matrices, found shapes {:?} and {:?}", at(), first.shape, readout.shape),
    };
    if inputs == 0 || outputs == 0 || inputs > 1 << 24 || outputs > 1 << 24 {
        bail!("{}: implausible network size: {inputs} inputs, {outputs} outputs", at());
    }
    // the config's layer sizes must match the stored weights before anything of
    // that size is allocated
    let mut fan_in = inputs;
    for (l, layer) in config.model.layers.iter().enumerate() {
        let name = weight_name(l);
        let shape = by_name.get(&name).map(|t| t.shape.clone());
        if shape.as_deref() != Some(&[layer.size, fan_in][..]) {
            bail!(
                "{}: the stored config has a hidden layer {l} of {} neurons with {fan_in} inputs, but tensor `{name}` is {}",
                at(),
                layer.size,
                shape.map(|s| format!("of shape {s:?}")).unwrap_or_else(|| "missing".into())
            );
        }
        fan_in = layer.size;
    }
    if readout.shape != [outputs, fan_in] {
        bail!(
            "{}: tensor `{}` has shape {:?}, the stored config needs [{outputs}, {fan_in}]",
            at(),
            weight_name(layers - 1),
            readout.shape
        );
    }
    let mut network: Network<f32> =
        init::build(&config.model.network_spec(), inputs, outputs, &mut ChaCha8Rng::seed_from_u64(0));
    network.load_state(|name| by_name.remove(name).map(|t| (t.shape, t.data))).map_err(|e| anyhow!("{}: {e}", at()))?;
    let mut optimizer = None;
    if let Some(adam_step) = metadata.get("adam_step") {
        let adam_step: u64 = adam_step
            .parse()
            .map_err(|_| anyhow!("{}: metadata `adam_step` = {adam_step:?} is not a whole number", at()))?;
        let (mut m, mut v) = (Vec::new(), Vec::new());
        for (info, _) in network.params() {
            m.push(take(&format!("adam.m.{}", info.name), &info.shape, &mut by_name)?);
            v.push(take(&format!("adam.v.{}", info.name), &info.shape, &mut by_name)?);
        }
        optimizer = Some(OptimizerState { step: adam_step, m, v });
    }
    if let Some(name) = by_name.keys().next() {
        bail!("{}: unexpected tensor `{name}` (another architecture?)", at());
    }
    let trainer_state = metadata.get("trainer_state").cloned();
    let selected_on = metadata.get("selected_on").cloned();
    Ok(Checkpoint { config, network, step, epoch, metrics, optimizer, trainer_state, selected_on, integrity })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: &str, loss: &str) -> Config {
        let text = format!(
            "seed = 4\n[model]\nkind = \"{kind}\"\ntau_init = {{ dist = \"uniform\", low = 0.01, high = 0.05 }}\nlayers = [{{ size = 5, recurrent = true }}, {{ size = 3 }}]\n[model.readout]\nloss = \"{loss}\"\n[task]\nkind = \"dms\"\nchannels_per_group = 2\n"
        );
        Config::from_toml(&text, &[]).unwrap()
    }

    #[test]
    fn every_model_round_trips_with_its_optimizer_state() {
        let dir = tempfile::tempdir().unwrap();
        for (kind, loss) in
            [("hetsynlif", "last"), ("hetneulif", "softmax_sum"), ("homneulif", "spike_count"), ("homneualif", "last")]
        {
            let config = config(kind, loss);
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let net: Network<f32> = init::build(&config.model.network_spec(), 6, 2, &mut rng);
            let sizes: Vec<usize> = net.params().iter().map(|(_, d)| d.len()).collect();
            let optimizer = OptimizerState {
                step: 7,
                m: sizes.iter().map(|&n| (0..n).map(|i| i as f32 * 0.5).collect()).collect(),
                v: sizes.iter().map(|&n| (0..n).map(|i| i as f32 * 0.25).collect()).collect(),
            };
            let path = dir.path().join(format!("{kind}.safetensors"));
            let metrics = serde_json::json!({"step": 7, "test_loss": 0.5});
            let resume = ResumeData { optimizer: &optimizer, trainer_state: "{\"x\": 1}" };
            save(&path, &net, &config, 7, 1, &metrics, Role::Resumable(resume)).unwrap();
            let back = load(&path).unwrap();
            assert_eq!(back.network, net, "{kind}");
            assert_eq!(back.config, config, "{kind}");
            assert_eq!(back.optimizer.as_ref(), Some(&optimizer), "{kind}");
            assert_eq!((back.step, back.epoch, back.metrics), (7, 1, metrics), "{kind}");
            assert_eq!(back.trainer_state.as_deref(), Some("{\"x\": 1}"));
            assert_eq!(back.integrity, Integrity::Verified);
            // a selected model carries no optimizer state, and says what it was selected on
            let best = dir.path().join(format!("{kind}-best.safetensors"));
            save(&best, &net, &config, 7, 1, &serde_json::Value::Null, Role::Selected("validation_accuracy")).unwrap();
            let back = load(&best).unwrap();
            assert!(back.optimizer.is_none() && back.trainer_state.is_none());
            assert_eq!(back.selected_on.as_deref(), Some("validation_accuracy"));
        }
    }

    #[test]
    fn a_checkpoint_of_another_architecture_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let config = config("hetsynlif", "last");
        let net: Network<f32> = init::build(&config.model.network_spec(), 6, 2, &mut ChaCha8Rng::seed_from_u64(1));
        let path = dir.path().join("a.safetensors");
        // the stored config says 5 neurons in layer 0, the tensors another size
        let mut other = config.clone();
        other.model.layers[0].size = 4;
        save(&path, &net, &other, 1, 0, &serde_json::Value::Null, Role::Selected("validation_accuracy")).unwrap();
        let e = format!("{:#}", load(&path).unwrap_err());
        assert!(e.contains("hidden.0.input.weight") && e.contains("4 neurons"), "{e}");
    }
}
