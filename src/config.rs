//! The run configuration: a TOML file parsed with serde, `--set key=value`
//! overrides, defaults and validation. Every error names the file, the key and
//! the value at fault. Times are in seconds, rates in Hz.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::model::init::{LayerSpec, NetworkSpec};
use crate::model::{LossKind, Surrogate};
pub use crate::tasks::{Sampling, TaskConfig};

/// A whole run: model, task, training and output settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Run name; the run directory is `<output.dir>/<name>-<UTC timestamp>`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Seed of every random draw of the run.
    #[serde(default)]
    pub seed: u64,
    /// Worker threads; 0 = one per core.
    #[serde(default)]
    pub threads: usize,
    pub model: ModelConfig,
    pub task: TaskConfig,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub output: OutputConfig,
}

fn default_name() -> String {
    "run".into()
}

pub use crate::model::init::{ModelKind, TauInit};

/// Checks a time-constant distribution given under `key`.
fn validate_tau_init(init: &TauInit, key: &str) -> Result<()> {
    let positive = |k: &str, v: f64| -> Result<()> {
        if !(v.is_finite() && v > 0.0) {
            bail!("{key}.{k} = {v}: a time constant must be a positive number of seconds");
        }
        Ok(())
    };
    match *init {
        TauInit::Constant { value } => positive("value", value),
        TauInit::Normal { mean, std } => {
            positive("mean", mean)?;
            if !(std.is_finite() && std >= 0.0) {
                bail!("{key}.std = {std}: must be >= 0");
            }
            Ok(())
        }
        TauInit::Uniform { low, high } => {
            positive("low", low)?;
            positive("high", high)?;
            if high < low {
                bail!("{key}.high = {high}: must be >= low ({low})");
            }
            Ok(())
        }
    }
}

/// One hidden layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    pub size: usize,
    /// Recurrent synapses from the layer's own spikes of the previous step.
    #[serde(default)]
    pub recurrent: bool,
    /// Overrides `model.tau_init` for this layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tau_init: Option<TauInit>,
}

/// The leaky readout and its loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadoutConfig {
    pub loss: LossKind,
    /// Initial steps left out of the `softmax_sum` readout (authors' SHD: 11).
    #[serde(default)]
    pub skip_steps: usize,
    /// Overrides `model.tau_init` for the readout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tau_init: Option<TauInit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub kind: ModelKind,
    /// Step length, seconds.
    #[serde(default = "default_dt")]
    pub dt: f64,
    /// Firing threshold `theta`.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    #[serde(default = "default_surrogate")]
    pub surrogate: Surrogate,
    /// Time constant of the reset current (HetSynLIF), seconds.
    #[serde(default = "default_tau_reset")]
    pub tau_reset: f64,
    /// Initial time constants of hidden layers (and of the readout unless it sets its own).
    pub tau_init: TauInit,
    /// Adaptation time constant (HomNeuALIF), seconds.
    #[serde(default = "default_adaptation_tau")]
    pub adaptation_tau: f64,
    /// Adaptation strength `a` (HomNeuALIF).
    #[serde(default = "default_adaptation_strength")]
    pub adaptation_strength: f64,
    /// Dropout probability on hidden spikes fed to the next layer (training only).
    #[serde(default)]
    pub dropout: f64,
    /// Weights are drawn `N(0, weight_scale^2 / fan_in)`.
    #[serde(default = "default_weight_scale")]
    pub weight_scale: f64,
    /// Learnable decays are clamped to `[decay_min, decay_max]` after every step.
    #[serde(default = "default_decay_min")]
    pub decay_min: f64,
    #[serde(default = "default_decay_max")]
    pub decay_max: f64,
    /// Fraction of each learnable decay tensor frozen at its initial value
    /// (seeded choice, see `train::freeze`); 0 = none.
    #[serde(default)]
    pub frozen_decay_fraction: f64,
    pub layers: Vec<LayerConfig>,
    pub readout: ReadoutConfig,
}

impl ModelConfig {
    /// The network this config describes, as the model builds it (per-layer
    /// `tau_init` overrides resolved).
    pub fn network_spec(&self) -> NetworkSpec {
        NetworkSpec {
            kind: self.kind,
            dt: self.dt,
            threshold: self.threshold,
            surrogate: self.surrogate,
            tau_reset: self.tau_reset,
            adaptation_tau: self.adaptation_tau,
            adaptation_strength: self.adaptation_strength,
            weight_scale: self.weight_scale,
            decay_min: self.decay_min,
            decay_max: self.decay_max,
            layers: self
                .layers
                .iter()
                .map(|l| LayerSpec {
                    size: l.size,
                    recurrent: l.recurrent,
                    tau_init: l.tau_init.unwrap_or(self.tau_init),
                })
                .collect(),
            readout_tau_init: self.readout.tau_init.unwrap_or(self.tau_init),
            spiking_readout: self.readout.loss == LossKind::SpikeCount,
        }
    }
}

/// `--model` of `hetsyn bench`: the config's names of the neuron models
/// (`model.kind`).
impl clap::ValueEnum for ModelKind {
    fn value_variants<'a>() -> &'a [Self] {
        &[ModelKind::Hetsynlif, ModelKind::Hetneulif, ModelKind::Homneulif, ModelKind::Homneualif]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let name = match self {
            ModelKind::Hetsynlif => "hetsynlif",
            ModelKind::Hetneulif => "hetneulif",
            ModelKind::Homneulif => "homneulif",
            ModelKind::Homneualif => "homneualif",
        };
        Some(clap::builder::PossibleValue::new(name))
    }
}

/// The defaults of `[model]`'s optional keys, the one place they are spelled:
/// the config reads them, and `hetsyn bench` builds its networks with them.
pub mod model_defaults {
    use crate::model::Surrogate;

    /// Step length, seconds.
    pub const DT: f64 = 1e-3;
    pub const THRESHOLD: f64 = 1.0;
    pub const SURROGATE: Surrogate = Surrogate::MultiGaussian;
    /// Seconds.
    pub const TAU_RESET: f64 = 0.02;
    /// Seconds.
    pub const ADAPTATION_TAU: f64 = 0.5;
    pub const ADAPTATION_STRENGTH: f64 = 0.01;
    pub const WEIGHT_SCALE: f64 = 1.0;
    pub const DECAY_MIN: f64 = 0.0;
    pub const DECAY_MAX: f64 = 1.0;
}

fn default_dt() -> f64 {
    model_defaults::DT
}
fn default_threshold() -> f64 {
    model_defaults::THRESHOLD
}
fn default_surrogate() -> Surrogate {
    model_defaults::SURROGATE
}
fn default_tau_reset() -> f64 {
    model_defaults::TAU_RESET
}
fn default_adaptation_tau() -> f64 {
    model_defaults::ADAPTATION_TAU
}
fn default_adaptation_strength() -> f64 {
    model_defaults::ADAPTATION_STRENGTH
}
fn default_weight_scale() -> f64 {
    model_defaults::WEIGHT_SCALE
}
fn default_decay_min() -> f64 {
    model_defaults::DECAY_MIN
}
fn default_decay_max() -> f64 {
    model_defaults::DECAY_MAX
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam; `weight_decay` is an L2 term added to the gradient.
    Adam,
    /// AdamW; `weight_decay` is decoupled.
    Adamw,
}

/// Learning-rate schedule, a factor of the base rates per optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleConfig {
    Constant,
    /// Multiply by `gamma` every `every` optimizer steps.
    Step {
        every: u64,
        gamma: f64,
    },
    /// Linear warm-up over `warmup_fraction` of `span` steps, cosine to the end of
    /// the span, held from `hold_fraction` of the span on (the authors' SHD schedule).
    /// Dataset tasks may give the span in epochs (`span_epochs`) instead of steps.
    WarmupCosine {
        #[serde(default)]
        span: u64,
        #[serde(default)]
        span_epochs: f64,
        #[serde(default = "default_warmup")]
        warmup_fraction: f64,
        #[serde(default = "default_hold")]
        hold_fraction: f64,
    },
}

fn default_warmup() -> f64 {
    0.05
}
fn default_hold() -> f64 {
    0.95
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Optimizer steps (trial-based tasks draw a fresh batch each); not used when `epochs` is set.
    pub iterations: u64,
    /// Dataset tasks: train for this many epochs (passes over the training
    /// samples, `ceil(samples / batch_size)` steps each) instead of `iterations`;
    /// 0 = use `iterations`.
    pub epochs: u64,
    /// With `epochs`: evaluate after every this many epochs (`eval_every` is then not used).
    pub eval_every_epochs: u64,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    /// Learning rate of the weights.
    pub lr: f64,
    /// Learning rate of the decays.
    pub decay_lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub schedule: ScheduleConfig,
    /// Largest global gradient norm; 0 = no clipping.
    pub grad_clip: f64,
    /// Evaluate on the validation and test sets every this many iterations.
    pub eval_every: u64,
    /// Weight `lambda` of the firing-rate regulariser; 0 = off.
    pub rate_reg: f64,
    /// Target firing rate of the regulariser, Hz.
    pub rate_target_hz: f64,
    /// Also write a resumable checkpoint every this many iterations; 0 = only at
    /// evaluations.
    pub checkpoint_every: u64,
    /// A non-finite loss or gradient: `stop` the run with an error, or `skip`
    /// the batch (counted in metrics.csv).
    pub on_nonfinite: NonFinite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NonFinite {
    Stop,
    Skip,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            iterations: 1000,
            epochs: 0,
            eval_every_epochs: 1,
            batch_size: 32,
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            decay_lr: 1e-3,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            schedule: ScheduleConfig::Constant,
            grad_clip: 0.0,
            eval_every: 50,
            rate_reg: 0.0,
            rate_target_hz: 10.0,
            checkpoint_every: 0,
            on_nonfinite: NonFinite::Stop,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Parent directory of run directories.
    pub dir: String,
    /// summary.json reports the fraction of learned time constants above this, s.
    pub tau_threshold: f64,
    /// Also write `checkpoints/best_on_test.safetensors`, the model with the best
    /// test figure (selected on the test set: the published protocol, optimistic).
    pub save_best_on_test: bool,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig { dir: "results".into(), tau_threshold: 0.7, save_best_on_test: false }
    }
}

impl Config {
    /// Reads `path`, applies `overrides` (`key=value`, dotted keys) and validates.
    /// An error that only an override causes is blamed on that `--set`.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        let error = match Config::from_toml(&text, overrides) {
            Ok(config) => return Ok(config),
            Err(e) => e,
        };
        if !overrides.is_empty() && Config::from_toml(&text, &[]).is_ok() {
            // the first override after which the config no longer loads
            for k in 1..=overrides.len() {
                if let Err(e) = Config::from_toml(&text, &overrides[..k]) {
                    let message = format!("{e:#}");
                    let blame = if message.starts_with("--set") {
                        String::new()
                    } else {
                        format!("--set {}: ", overrides[k - 1])
                    };
                    bail!("{blame}{message} (the config file {} itself is valid)", path.display());
                }
            }
        }
        Err(error.context(format!("invalid config file {}", path.display())))
    }

    /// Parses TOML text, applies `overrides` and validates.
    pub fn from_toml(text: &str, overrides: &[String]) -> Result<Config> {
        let mut table: toml::Table =
            text.parse().map_err(|e: toml::de::Error| anyhow!("{}", e.to_string().trim_end()))?;
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        let value = toml::Value::Table(table);
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // toml repeats the key on a line of its own; the path is given already
            let inner = plain_words(inner.lines().next().unwrap_or_default().trim_end());
            if path == "." || path.is_empty() {
                anyhow!("{inner}")
            } else {
                anyhow!("key `{path}`: {inner}")
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The task this config describes, with its fixed validation and test sets
    /// drawn from the run's seed.
    pub fn build_task(&self) -> Result<Box<dyn crate::tasks::Task>> {
        self.task.build(self.model.dt, self.seed)
    }

    /// The fully resolved config as TOML (re-runnable as is).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).context("cannot serialise the config")
    }

    /// The keys whose values differ between two configs, `threads` aside (it
    /// does not change results), as `key: A vs B` lines.
    pub fn differences(&self, other: &Config) -> Result<Vec<String>> {
        let flat = |c: &Config| -> Result<std::collections::BTreeMap<String, String>> {
            let mut c = c.clone();
            c.threads = 0;
            let value = toml::Value::try_from(&c).context("cannot serialise the config")?;
            Ok(flatten_toml(&value).into_iter().map(|(k, v)| (k, v.to_string())).collect())
        };
        let (a, b) = (flat(self)?, flat(other)?);
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(absent)".into());
        Ok(keys
            .into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| format!("{k}: {} vs {}", show(a.get(k)), show(b.get(k))))
            .collect())
    }

    /// Ranges and consistency; messages name the key and the value.
    pub fn validate(&self) -> Result<()> {
        let m = &self.model;
        let positive = |key: &str, v: f64| -> Result<()> {
            if !(v.is_finite() && v > 0.0) {
                bail!("{key} = {v}: must be a positive number");
            }
            Ok(())
        };
        let fraction = |key: &str, v: f64| -> Result<()> {
            if !(0.0..=1.0).contains(&v) {
                bail!("{key} = {v}: must be in [0, 1]");
            }
            Ok(())
        };
        if self.name.is_empty() || self.name.contains(['/', '\\']) {
            bail!("name = {:?}: must be non-empty and contain no path separator", self.name);
        }
        positive("model.dt", m.dt)?;
        positive("model.threshold", m.threshold)?;
        positive("model.tau_reset", m.tau_reset)?;
        positive("model.adaptation_tau", m.adaptation_tau)?;
        if !m.adaptation_strength.is_finite() {
            bail!("model.adaptation_strength = {}: must be finite", m.adaptation_strength);
        }
        positive("model.weight_scale", m.weight_scale)?;
        if !(0.0..1.0).contains(&m.dropout) {
            bail!("model.dropout = {}: must be in [0, 1)", m.dropout);
        }
        fraction("model.decay_min", m.decay_min)?;
        fraction("model.decay_max", m.decay_max)?;
        if m.decay_max < m.decay_min {
            bail!("model.decay_max = {}: must be >= model.decay_min ({})", m.decay_max, m.decay_min);
        }
        if !(0.0..=1.0).contains(&m.frozen_decay_fraction) {
            bail!(
                "model.frozen_decay_fraction = {}: must be in [0, 1] (1: every learnable decay frozen)",
                m.frozen_decay_fraction
            );
        }
        validate_tau_init(&m.tau_init, "model.tau_init")?;
        if m.layers.is_empty() {
            bail!("model.layers = []: at least one hidden layer is needed");
        }
        for (i, l) in m.layers.iter().enumerate() {
            if l.size == 0 {
                bail!("model.layers[{i}].size = 0: must be at least 1");
            }
            if let Some(t) = &l.tau_init {
                validate_tau_init(t, &format!("model.layers[{i}].tau_init"))?;
            }
        }
        if let Some(t) = &m.readout.tau_init {
            validate_tau_init(t, "model.readout.tau_init")?;
        }

        if !(self.output.tau_threshold.is_finite() && self.output.tau_threshold >= 0.0) {
            bail!("output.tau_threshold = {}: must be a number of seconds >= 0", self.output.tau_threshold);
        }
        let t = &self.train;
        if t.iterations == 0 {
            bail!("train.iterations = 0: must be at least 1");
        }
        if t.batch_size == 0 {
            bail!("train.batch_size = 0: must be at least 1");
        }
        positive("train.lr", t.lr)?;
        positive("train.decay_lr", t.decay_lr)?;
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            bail!("train.weight_decay = {}: must be >= 0", t.weight_decay);
        }
        if !(0.0..1.0).contains(&t.beta1) {
            bail!("train.beta1 = {}: must be in [0, 1)", t.beta1);
        }
        if !(0.0..1.0).contains(&t.beta2) {
            bail!("train.beta2 = {}: must be in [0, 1)", t.beta2);
        }
        positive("train.eps", t.eps)?;
        if !(t.grad_clip.is_finite() && t.grad_clip >= 0.0) {
            bail!("train.grad_clip = {}: must be >= 0 (0 = off)", t.grad_clip);
        }
        if t.eval_every == 0 {
            bail!("train.eval_every = 0: must be at least 1");
        }
        if t.eval_every_epochs == 0 {
            bail!("train.eval_every_epochs = 0: must be at least 1");
        }
        if t.epochs > 0 && self.task.sampling() == Sampling::Trials {
            bail!("train.epochs = {}: this task draws fresh trials and has no epochs; use train.iterations", t.epochs);
        }
        if !(t.rate_reg.is_finite() && t.rate_reg >= 0.0) {
            bail!("train.rate_reg = {}: must be >= 0", t.rate_reg);
        }
        positive("train.rate_target_hz", t.rate_target_hz)?;
        match t.schedule {
            ScheduleConfig::Constant => {}
            ScheduleConfig::Step { every, gamma } => {
                if every == 0 {
                    bail!("train.schedule.every = 0: must be at least 1");
                }
                positive("train.schedule.gamma", gamma)?;
            }
            ScheduleConfig::WarmupCosine { span, span_epochs, warmup_fraction, hold_fraction } => {
                if !(span_epochs.is_finite() && span_epochs >= 0.0) {
                    bail!("train.schedule.span_epochs = {span_epochs}: must be a number of epochs >= 0");
                }
                match (span, span_epochs > 0.0) {
                    (0, false) => bail!(
                        "train.schedule: warmup_cosine needs span (optimizer steps, >= 1) or span_epochs (epochs, dataset tasks)"
                    ),
                    (s, true) if s > 0 => {
                        bail!("train.schedule: give span ({s} steps) or span_epochs ({span_epochs}), not both")
                    }
                    (_, true) if self.task.sampling() == Sampling::Trials => {
                        bail!("train.schedule.span_epochs = {span_epochs}: this task draws fresh trials and has no epochs; give span in steps")
                    }
                    _ => {}
                }
                fraction("train.schedule.warmup_fraction", warmup_fraction)?;
                fraction("train.schedule.hold_fraction", hold_fraction)?;
            }
        }

        self.task.validate(m.dt, m.readout.loss)
    }
}

/// A deserialisation message in plain words: Rust type names become "a whole
/// number ≥ 0" and the like, and an unknown field or variant gets the closest
/// known one ("did you mean") instead of the whole list when one is close.
fn plain_words(message: &str) -> String {
    let mut text = message.to_string();
    for (rust, plain) in [
        ("expected u64", "expected a whole number ≥ 0"),
        ("expected usize", "expected a whole number ≥ 0"),
        ("expected u32", "expected a whole number ≥ 0"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ] {
        text = text.replace(rust, plain);
    }
    for what in ["unknown field `", "unknown variant `"] {
        let Some(start) = text.find(what) else { continue };
        let rest = &text[start + what.len()..];
        let Some(end) = rest.find('`') else { continue };
        let unknown = &rest[..end];
        let Some(list_at) = rest.find("expected ") else { continue };
        let known: Vec<&str> = rest[list_at..].split('`').skip(1).step_by(2).collect();
        let best = known.iter().map(|k| (edit_distance(unknown, k), *k)).min();
        if let Some((distance, suggestion)) = best {
            if distance <= (unknown.chars().count() / 3).max(2) {
                text = format!("{}{unknown}`; did you mean `{suggestion}`?", &text[..start + what.len()]);
            }
        }
    }
    text
}

/// The leaves of a TOML value under dotted keys, the one flattening of a
/// config (`--resume`/`--if-exists` differences, `hetsyn summarize --by`,
/// `hetsyn record --keys`): tables by key, arrays of tables by index
/// (`model.layers.0.size`); any other array is one leaf (`task.repeat_starts`).
pub fn flatten_toml(value: &toml::Value) -> std::collections::BTreeMap<String, toml::Value> {
    fn walk(prefix: &str, value: &toml::Value, out: &mut std::collections::BTreeMap<String, toml::Value>) {
        let join = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
        match value {
            toml::Value::Table(t) => t.iter().for_each(|(k, v)| walk(&join(k), v, out)),
            toml::Value::Array(a) if a.iter().all(|v| v.is_table()) => {
                a.iter().enumerate().for_each(|(i, v)| walk(&join(&i.to_string()), v, out))
            }
            leaf => {
                out.insert(prefix.to_string(), leaf.clone());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk("", value, &mut out);
    out
}

/// Levenshtein distance (insertions, deletions, substitutions), by characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Applies one `key=value` override to the parsed table. The value is read as a
/// TOML value (`3`, `1e-3`, `true`, `"x"`, `[1, 2]`, `{ dist = "constant", value = 0.02 }`)
/// or, failing that, as a bare string. A numeric key segment indexes an array
/// (`model.layers.0.size=64`).
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| anyhow!("--set {assignment:?}: expected key=value, e.g. --set train.lr=1e-3"))?;
    let key = key.trim();
    let raw = raw.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        bail!("--set {assignment:?}: the key {key:?} is not a dotted key like model.kind");
    }
    let value: toml::Value = match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = TableOrArray::Table(table);
    for (depth, part) in parts.iter().enumerate() {
        let last = depth + 1 == parts.len();
        let here = parts[..=depth].join(".");
        node = match node {
            TableOrArray::Table(t) => {
                if last {
                    t.insert(part.to_string(), value);
                    return Ok(());
                }
                let entry = t.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                match entry {
                    toml::Value::Table(t) => TableOrArray::Table(t),
                    toml::Value::Array(a) => TableOrArray::Array(a),
                    other => bail!("--set {assignment:?}: `{here}` is a {} , not a table", other.type_str()),
                }
            }
            TableOrArray::Array(a) => {
                let index: usize = part
                    .parse()
                    .map_err(|_| anyhow!("--set {assignment:?}: `{here}`: an array needs a numeric index"))?;
                let len = a.len();
                let item = a.get_mut(index).ok_or_else(|| {
                    anyhow!("--set {assignment:?}: `{here}`: index {index} is past the end ({len} entries)")
                })?;
                if last {
                    *item = value;
                    return Ok(());
                }
                match item {
                    toml::Value::Table(t) => TableOrArray::Table(t),
                    toml::Value::Array(a) => TableOrArray::Array(a),
                    other => bail!("--set {assignment:?}: `{here}` is a {}, not a table", other.type_str()),
                }
            }
        };
    }
    Ok(())
}

enum TableOrArray<'a> {
    Table(&'a mut toml::Table),
    Array(&'a mut Vec<toml::Value>),
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[model]\nkind = \"hetsynlif\"\ntau_init = { dist = \"constant\", value = 0.02 }\nlayers = [{ size = 4 }]\n[model.readout]\nloss = \"last\"\n[task]\nkind = \"dms\"\n";

    /// The error of BASE with one override, as text.
    fn error_with(set: &str) -> String {
        format!(
            "{:#}",
            Config::from_toml(BASE, &[set.to_string()]).err().unwrap_or_else(|| panic!("{set} was accepted"))
        )
    }

    #[test]
    fn bad_values_are_refused_naming_the_key_and_value() {
        assert!(Config::from_toml(BASE, &[]).is_ok());
        for (set, want) in [
            ("model.dt=0", "model.dt = 0"),
            ("model.dropout=1.0", "model.dropout = 1"),
            ("model.decay_min=1.5", "model.decay_min = 1.5"),
            ("model.layers.0.size=0", "model.layers[0].size = 0"),
            ("model.tau_init={ dist = \"uniform\", low = 0.05, high = 0.01 }", "model.tau_init.high = 0.01"),
            ("model.tau_init={ dist = \"normal\", mean = -1.0, std = 0.1 }", "model.tau_init.mean = -1"),
            ("train.iterations=0", "train.iterations = 0"),
            ("train.lr=-1e-3", "train.lr = -0.001"),
            ("train.beta2=1.0", "train.beta2 = 1"),
            ("train.epochs=3", "this task draws fresh trials"),
            ("train.schedule={ kind = \"warmup_cosine\" }", "needs span"),
            ("train.schedule={ kind = \"warmup_cosine\", span_epochs = 4.0 }", "has no epochs"),
            ("model.readout.loss=\"mse\"", "the dms task is a classification"),
            ("task.validation_trials=0", "task.validation_trials = 0"),
            ("name=\"a/b\"", "path separator"),
            ("output.tau_threshold=-1", "output.tau_threshold = -1"),
        ] {
            let e = error_with(set);
            assert!(e.contains(want), "--set {set}: {e}");
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_named() {
        let e = error_with("train.iteratons=5");
        assert!(e.contains("train") && e.contains("did you mean `iterations`"), "{e}");
        let e = error_with("train.iterations=\"many\"");
        assert!(e.contains("train.iterations") && e.contains("whole number"), "{e}");
        let e = error_with("task.kind=\"dsm\"");
        assert!(e.contains("did you mean `dms`"), "{e}");
        assert!(Config::from_toml("[model", &[]).is_err());
    }

    #[test]
    fn the_network_spec_resolves_per_layer_time_constants() {
        let config = Config::from_toml(
            BASE,
            &["model.layers=[{ size = 3, recurrent = true, tau_init = { dist = \"constant\", value = 0.5 } }, { size = 2 }]".into()],
        )
        .unwrap();
        let spec = config.model.network_spec();
        assert_eq!(spec.layers.len(), 2);
        assert_eq!(spec.layers[0].tau_init, TauInit::Constant { value: 0.5 });
        assert_eq!(spec.layers[1].tau_init, config.model.tau_init);
        assert!(spec.layers[0].recurrent && !spec.layers[1].recurrent);
        assert_eq!(spec.readout_tau_init, config.model.tau_init);
        assert!(!spec.spiking_readout);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("iteratons", "iterations"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn messages_in_plain_words() {
        let m = plain_words("unknown field `iteratons`, expected one of `iterations`, `epochs`, `batch_size`");
        assert_eq!(m, "unknown field `iteratons`; did you mean `iterations`?");
        // nothing close: the list stays
        let m = plain_words("unknown field `zzz`, expected one of `iterations`, `epochs`");
        assert!(m.contains("expected one of `iterations`, `epochs`"), "{m}");
        let m = plain_words("unknown variant `hetsynlf`, expected one of `hetsynlif`, `hetneulif`");
        assert!(m.ends_with("did you mean `hetsynlif`?"), "{m}");
        let base = Config::from_toml(
            "[model]\nkind = \"hetsynlif\"\ntau_init = { dist = \"constant\", value = 0.02 }\nlayers = [{ size = 4 }]\n[model.readout]\nloss = \"last\"\n[task]\nkind = \"dms\"\n",
            &[],
        )
        .unwrap();
        let other = Config { threads: 3, ..base.clone() };
        assert!(base.differences(&other).unwrap().is_empty(), "threads do not count");
        let mut other = base.clone();
        other.model.layers[0].size = 5;
        assert_eq!(base.differences(&other).unwrap(), ["model.layers.0.size: 4 vs 5"]);
        assert_eq!(
            plain_words("invalid value: integer `-1`, expected u64"),
            "invalid value: integer `-1`, expected a whole number ≥ 0"
        );
    }
}
