//! Evaluation: loss, accuracy and task figures of a network on held-out
//! samples (the trainer's periodic evaluations), and `hetsyn eval`'s
//! re-evaluation of a checkpoint under clean and perturbed conditions.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::run::RunDir;
use super::tau_stats::{reset_long_taus, ResetScope};
use crate::config::Config;
use crate::io::atomic::write_atomic;
use crate::checkpoint::{self, Checkpoint};
use crate::model::init::TauInit;
use crate::model::{BatchStats, Network, Objective, RateRegulariser};
use crate::tasks::{Perturbation, Sample, Task, TaskKind};

/// Samples evaluated together (bounds memory of evaluation).
const EVAL_CHUNK: usize = 256;

/// Loss, accuracy and task figures of a model on held-out samples.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub stats: BatchStats,
    /// `None` for regression tasks.
    pub accuracy: Option<f64>,
    /// Task figures averaged over the samples.
    pub metrics: Vec<(String, f64)>,
}

/// The loss of a config.
pub fn objective(config: &Config) -> Objective {
    Objective {
        loss: config.model.readout.loss,
        skip_steps: config.model.readout.skip_steps,
        rate_regulariser: (config.train.rate_reg > 0.0)
            .then_some(RateRegulariser { lambda: config.train.rate_reg, target_hz: config.train.rate_target_hz }),
    }
}

/// Loss, accuracy and the task's figures of `net` on `samples` (no dropout,
/// no regulariser).
pub fn evaluate(net: &Network<f32>, task: &dyn Task, samples: &[Sample], objective: &Objective) -> Evaluation {
    evaluate_steps(net, task, samples, task.shape().steps, objective)
}

/// [`evaluate`] on samples of `steps` steps (a time-warped test set).
pub fn evaluate_steps(
    net: &Network<f32>,
    task: &dyn Task,
    samples: &[Sample],
    steps: usize,
    objective: &Objective,
) -> Evaluation {
    let shape = task.shape();
    let objective = Objective { rate_regulariser: None, ..*objective };
    let mut total = BatchStats::default();
    let (mut loss, mut rate) = (0.0, 0.0);
    // task figures (regression) from the readout traces of the same forward pass
    let regression = shape.kind == TaskKind::Regression;
    let figures = |output: &[f32]| if regression { task.output_metrics(output) } else { Vec::new() };
    let mut per_sample: Vec<Vec<(String, f64)>> = Vec::new();
    for chunk in samples.chunks(EVAL_CHUNK) {
        let (stats, chunk_figures) = net.loss_and_outputs(chunk, steps, &objective, &figures);
        loss += stats.loss * stats.samples as f64;
        rate += stats.mean_rate_hz * stats.samples as f64;
        total.samples += stats.samples;
        total.correct += stats.correct;
        per_sample.extend(chunk_figures);
    }
    let n = total.samples.max(1) as f64;
    total.loss = loss / n;
    total.task_loss = total.loss;
    total.mean_rate_hz = rate / n;
    let mut metrics: Vec<(String, f64)> = Vec::new();
    for sample in &per_sample {
        for (k, (name, v)) in sample.iter().enumerate() {
            match metrics.get_mut(k) {
                Some(m) => m.1 += v / n,
                None => metrics.push((name.clone(), v / n)),
            }
        }
    }
    let accuracy = (shape.kind == TaskKind::Classification).then(|| total.accuracy());
    Evaluation { stats: total, accuracy, metrics }
}

/// A checkpoint and the task its config describes, checked to fit each other.
pub struct Trained {
    pub path: PathBuf,
    pub checkpoint: Checkpoint,
    pub task: Box<dyn Task>,
}

impl Trained {
    /// Loads `path` (a checkpoint, or a run directory: its reported checkpoint,
    /// see [`RunDir::reported_checkpoint`]) and builds its task from `config`
    /// (the checkpoint's own when `None`); the network's inputs and outputs
    /// must be the task's.
    pub fn load(path: &Path, config: Option<&Config>) -> Result<Trained> {
        let path = checkpoint_path(path)?;
        let checkpoint = checkpoint::load(&path)?;
        let task = Self::task_of(&path, &checkpoint, config.unwrap_or(&checkpoint.config))?;
        Ok(Trained { path, checkpoint, task })
    }

    /// The task of `config`, checked against the checkpoint's network.
    fn task_of(path: &Path, checkpoint: &Checkpoint, config: &Config) -> Result<Box<dyn Task>> {
        let task =
            config.build_task().with_context(|| format!("checkpoint {}: cannot build its task", path.display()))?;
        let (shape, net) = (task.shape(), &checkpoint.network);
        if shape.channels != net.inputs() || shape.outputs != net.outputs() {
            bail!(
                "checkpoint {}: the network has {} inputs and {} outputs, its task needs {} and {}",
                path.display(),
                net.inputs(),
                net.outputs(),
                shape.channels,
                shape.outputs
            );
        }
        Ok(task)
    }
}

/// The checkpoint `path` names: itself, or for a run directory its reported
/// checkpoint ([`RunDir::reported_checkpoint`]).
pub fn checkpoint_path(path: &Path) -> Result<PathBuf> {
    if path.is_dir() {
        RunDir::at(path).reported_checkpoint()
    } else {
        Ok(path.to_path_buf())
    }
}

/// What `hetsyn eval` evaluates besides the clean test set (its options, as
/// the command line takes them).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EvalOptions {
    /// Also evaluate with the task's background noise at these rates (Hz, comma separated); one CSV row each.
    #[arg(long, value_delimiter = ',')]
    pub noise_rates: Vec<f64>,
    /// Spike-data tasks: also evaluate with each input spike deleted with these probabilities; one row each.
    #[arg(long, value_delimiter = ',')]
    pub delete_prob: Vec<f64>,
    /// Spike-data tasks: also evaluate with each empty input bin set with these probabilities; one row each.
    #[arg(long, value_delimiter = ',')]
    pub add_prob: Vec<f64>,
    /// Spike-data tasks: also evaluate with spike times multiplied by these factors before binning.
    #[arg(long, value_delimiter = ',')]
    pub time_warp: Vec<f64>,
    /// Spike-data tasks: also evaluate this many time-warp factors with log2(factor) ~ U(-0.5, 0.5) (the paper: 20).
    #[arg(long, default_value_t = 0)]
    pub time_warp_random: usize,
    /// Seed of the perturbations and of the random time-warp factors.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also evaluate, for each condition, the network with every learnable decay whose time constant exceeds
    /// the config's output.tau_threshold reset to its initial value (rebuilt from the config's seed).
    #[arg(long)]
    pub reset_long_tau: bool,
    /// What the long time constants are reset to (implies the reset; comma separated, one set of rows each):
    /// `initial` (each decay's own initial value) or `mean` (its tensor's initial mean, the paper's Table 4).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub reset_to: Vec<ResetTarget>,
    /// Which decays the reset looks at (implies the reset; comma separated): `all` learnable decays, or
    /// `first-input`, the first hidden layer's input synapses (HetSynLIF; the synapses of the paper's Table 4).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub reset_synapses: Vec<ResetScope>,
}

/// What a long time constant is reset to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResetTarget {
    // (plain comments: `hetsyn eval --help` lists the names alone)
    // The decay's own initial value (the network rebuilt from the config's seed).
    Initial,
    // The mean of its tensor's initial distribution, `exp(-dt / mu)` (the
    // paper's Table 4: "reset to the initial mean").
    Mean,
}

impl EvalOptions {
    /// The resets to evaluate, each with the suffix of its rows' conditions:
    /// every scope with every target; `+reset_long_tau` for (all, initial).
    pub fn resets(&self) -> Vec<(ResetScope, ResetTarget, String)> {
        if !self.reset_long_tau && self.reset_to.is_empty() && self.reset_synapses.is_empty() {
            return Vec::new();
        }
        let scopes = if self.reset_synapses.is_empty() { vec![ResetScope::All] } else { self.reset_synapses.clone() };
        let targets = if self.reset_to.is_empty() { vec![ResetTarget::Initial] } else { self.reset_to.clone() };
        let mut out = Vec::new();
        for &scope in &scopes {
            for &target in &targets {
                let suffix = match (scope, target) {
                    (ResetScope::All, ResetTarget::Initial) => "+reset_long_tau".to_string(),
                    _ => format!(
                        "+reset_{}_to_{}",
                        match scope {
                            ResetScope::All => "all",
                            ResetScope::FirstInput => "first_input",
                        },
                        match target {
                            ResetTarget::Initial => "initial",
                            ResetTarget::Mean => "mean",
                        }
                    ),
                };
                out.push((scope, target, suffix));
            }
        }
        out
    }
}

/// The network of `config` with every decay at the mean of its tensor's
/// initial time-constant distribution, `exp(-dt / mu)` (weights as drawn).
fn mean_decay_network(config: &Config, inputs: usize, outputs: usize) -> Network<f32> {
    let mut spec = config.model.network_spec();
    let constant = |init: &TauInit| TauInit::Constant { value: init.mean() };
    for layer in &mut spec.layers {
        layer.tau_init = constant(&layer.tau_init);
    }
    spec.readout_tau_init = constant(&spec.readout_tau_init);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    crate::model::init::build(&spec, inputs, outputs, &mut rng)
}

impl EvalOptions {
    /// The perturbed conditions, checked; the random time warps come last.
    pub fn perturbations(&self) -> Result<Vec<Perturbation>> {
        let mut out = Vec::new();
        for (flag, values, make) in [
            ("--delete-prob", &self.delete_prob, Perturbation::Delete as fn(f64) -> Perturbation),
            ("--add-prob", &self.add_prob, Perturbation::Add),
        ] {
            for &p in values {
                if !(0.0..=1.0).contains(&p) {
                    bail!("{flag} {p}: a probability must be in [0, 1]");
                }
                out.push(make(p));
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let random = (0..self.time_warp_random).map(|_| 2f64.powf(rng.gen_range(-0.5..0.5)));
        for alpha in self.time_warp.iter().copied().chain(random) {
            if !(alpha.is_finite() && alpha > 0.0) {
                bail!("--time-warp {alpha}: a time-warp factor must be a positive number");
            }
            out.push(Perturbation::TimeWarp(alpha));
        }
        Ok(out)
    }
}

/// The prefix of the eval CSV columns that repeat what training logged.
const LOGGED: &str = "logged_";

/// One row of an eval CSV: a network under one condition.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRow {
    pub checkpoint: String,
    pub step: u64,
    /// `clean`, `noise_rate=…`, `delete_prob=…`, `add_prob=…`, `time_warp=…`,
    /// `time_warp_random_mean`, each with `+reset_long_tau` for the reset network.
    pub condition: String,
    pub samples: usize,
    pub test_loss: f64,
    pub test_accuracy: Option<f64>,
    /// The task's figures (`test_<name>` columns; empty in mean rows).
    pub metrics: Vec<(String, Option<f64>)>,
    /// The share of learnable decays reset (`+reset_long_tau` rows).
    pub reset_fraction: Option<f64>,
    /// What training logged for this checkpoint (the clean row only).
    pub logged_test_loss: Option<f64>,
    pub logged_test_accuracy: Option<f64>,
}

/// The columns of an eval CSV that name a row rather than give a figure:
/// `checkpoint, step, condition, samples`, then the figures (`test_loss`,
/// `test_accuracy`, the task's `test_<name>`, `reset_fraction`), then the
/// `logged_*` figures training wrote for the checkpoint.
pub const EVAL_ROW_KEYS: [&str; 4] = ["checkpoint", "step", "condition", "samples"];

impl EvalRow {
    /// The row's columns, name and cell, in order: the one declaration of the
    /// eval CSV's header and cells ([`EvalRow::is_figure`] reads them back).
    fn columns(&self) -> Vec<(String, String)> {
        let fmt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let [checkpoint, step, condition, samples] = EVAL_ROW_KEYS;
        let mut columns = vec![
            (checkpoint.to_string(), self.checkpoint.clone()),
            (step.to_string(), self.step.to_string()),
            (condition.to_string(), self.condition.clone()),
            (samples.to_string(), self.samples.to_string()),
            ("test_loss".to_string(), self.test_loss.to_string()),
            ("test_accuracy".to_string(), fmt(self.test_accuracy)),
        ];
        columns.extend(self.metrics.iter().map(|(name, v)| (format!("test_{name}"), fmt(*v))));
        columns.extend([
            ("reset_fraction".to_string(), fmt(self.reset_fraction)),
            (LOGGED.to_string() + "test_loss", fmt(self.logged_test_loss)),
            (LOGGED.to_string() + "test_accuracy", fmt(self.logged_test_accuracy)),
        ]);
        columns
    }

    /// Whether an eval CSV column holds a figure of the evaluated network
    /// (not a key of the row, nor a figure logged at training time).
    pub fn is_figure(column: &str) -> bool {
        !EVAL_ROW_KEYS.contains(&column) && !column.starts_with(LOGGED)
    }

    /// The line `hetsyn eval` prints for the row.
    pub fn line(&self) -> String {
        if self.condition.starts_with("time_warp_random_mean") {
            return format!(
                "{} [{}]: mean over the random time warps: test loss {:.6}, test accuracy {:.4}",
                self.checkpoint,
                self.condition,
                self.test_loss,
                self.test_accuracy.unwrap_or(f64::NAN)
            );
        }
        let metrics: Vec<String> =
            self.metrics.iter().filter_map(|(name, v)| v.map(|v| format!(", {name} {v:.4}"))).collect();
        format!(
            "{} [{}]: step {}, test loss {:.6}{}{} ({} samples)",
            self.checkpoint,
            self.condition,
            self.step,
            self.test_loss,
            self.test_accuracy.map(|a| format!(", test accuracy {a:.4}")).unwrap_or_default(),
            metrics.concat(),
            self.samples
        )
    }
}

/// Writes eval rows as CSV (header from the first row), atomically.
pub fn write_eval_csv(path: &Path, rows: &[EvalRow]) -> Result<()> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    if let Some(first) = rows.first() {
        writer.write_record(first.columns().into_iter().map(|(name, _)| name))?;
    }
    for row in rows {
        writer.write_record(row.columns().into_iter().map(|(_, cell)| cell))?;
    }
    write_atomic(path, &writer.into_inner().context("cannot format the CSV")?)
}

/// What [`evaluate_checkpoint`] found.
#[derive(Debug, Clone)]
pub struct EvalReport {
    pub rows: Vec<EvalRow>,
    /// Per reset (its condition suffix): how many of how many learnable decays
    /// in its scope were reset, and the threshold (ms).
    pub resets: Vec<(String, usize, usize, f64)>,
}

/// Evaluates a trained model on its task's test set, clean and under every
/// condition of `options`; one row per condition and network (the learned
/// one, and with `reset_long_tau` the reset one), then the mean rows of the
/// random time warps.
pub fn evaluate_checkpoint(trained: &Trained, options: &EvalOptions) -> Result<EvalReport> {
    let ckpt = &trained.checkpoint;
    let label = trained.path.display().to_string();
    let perturbations = options.perturbations()?;
    // the clean task, and one per noise rate
    let mut tasks: Vec<(String, Box<dyn Task>)> = Vec::new();
    for rate in &options.noise_rates {
        let mut config = ckpt.config.clone();
        config.task.set_noise_rate(*rate).with_context(|| format!("--noise-rates {rate}"))?;
        config.validate().with_context(|| format!("--noise-rates {rate}"))?;
        tasks.push((format!("noise_rate={rate}"), Trained::task_of(&trained.path, ckpt, &config)?));
    }
    // the learned network, and the one whose long time constants are reset
    let mut networks: Vec<(String, Network<f32>, Option<f64>)> = vec![(String::new(), ckpt.network.clone(), None)];
    let mut resets = Vec::new();
    let threshold_ms = ckpt.config.output.tau_threshold * 1000.0;
    let (inputs, outputs) = (ckpt.network.inputs(), ckpt.network.outputs());
    for (scope, target, suffix) in options.resets() {
        let target_network = match target {
            ResetTarget::Initial => super::initial_network(&ckpt.config, inputs, outputs),
            ResetTarget::Mean => mean_decay_network(&ckpt.config, inputs, outputs),
        };
        let mut network = ckpt.network.clone();
        let (count, total) = reset_long_taus(&mut network, &target_network, threshold_ms, scope)
            .with_context(|| format!("--reset-long-tau: checkpoint {label}"))?;
        if total == 0 {
            bail!("--reset-synapses: checkpoint {label} has no learnable decays in scope {scope:?} (first-input needs HetSynLIF)");
        }
        resets.push((suffix.clone(), count, total, threshold_ms));
        networks.push((suffix, network, Some(count as f64 / total as f64)));
    }
    let clean = trained.task.as_ref();
    let mut perturbed = Vec::new();
    for perturbation in &perturbations {
        let (samples, steps) = clean.perturbed_test(perturbation, options.seed)?;
        perturbed.push((perturbation.to_string(), samples, steps));
    }
    // every condition: its name, task, test samples and their steps
    let conditions: Vec<(&str, &dyn Task, &[Sample], usize)> = std::iter::once(("clean", clean))
        .chain(tasks.iter().map(|(name, task)| (name.as_str(), task.as_ref())))
        .map(|(name, task)| (name, task, task.test(), task.shape().steps))
        .chain(perturbed.iter().map(|(name, samples, steps)| (name.as_str(), clean, &samples[..], *steps)))
        .collect();
    let objective = objective(&ckpt.config);
    let logged = |key: &str| ckpt.metrics.get(key).and_then(|v| v.as_f64());
    let random_from = conditions.len() - options.time_warp_random;
    let mut rows = Vec::new();
    let mut random_sums = vec![(0.0, 0.0, 0usize); networks.len()];
    let mut metric_names = Vec::new();
    for (k, (condition, task, samples, steps)) in conditions.iter().enumerate() {
        for (n, (suffix, network, reset_fraction)) in networks.iter().enumerate() {
            let test = evaluate_steps(network, *task, samples, *steps, &objective);
            if k >= random_from {
                let sums = &mut random_sums[n];
                sums.0 += test.stats.loss;
                sums.1 += test.accuracy.unwrap_or(f64::NAN);
                sums.2 += test.stats.samples;
            }
            metric_names = test.metrics.iter().map(|(name, _)| name.clone()).collect();
            let clean = k == 0 && n == 0;
            rows.push(EvalRow {
                checkpoint: label.clone(),
                step: ckpt.step,
                condition: format!("{condition}{suffix}"),
                samples: test.stats.samples,
                test_loss: test.stats.loss,
                test_accuracy: test.accuracy,
                metrics: test.metrics.iter().map(|(name, v)| (name.clone(), Some(*v))).collect(),
                reset_fraction: *reset_fraction,
                logged_test_loss: logged("test_loss").filter(|_| clean),
                logged_test_accuracy: logged("test_accuracy").filter(|_| clean),
            });
        }
    }
    if options.time_warp_random > 0 {
        let count = options.time_warp_random as f64;
        for ((suffix, _, reset_fraction), (loss, accuracy, samples)) in networks.iter().zip(&random_sums) {
            rows.push(EvalRow {
                checkpoint: label.clone(),
                step: ckpt.step,
                condition: format!("time_warp_random_mean{suffix}"),
                samples: *samples,
                test_loss: loss / count,
                test_accuracy: Some(accuracy / count),
                metrics: metric_names.iter().map(|name| (name.clone(), None)).collect(),
                reset_fraction: *reset_fraction,
                logged_test_loss: None,
                logged_test_accuracy: None,
            });
        }
    }
    Ok(EvalReport { rows, resets })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ParamKind;

    /// Every decay of the mean network is `exp(-dt / mu)` of its tensor's
    /// distribution; its shapes are the trained network's.
    #[test]
    fn the_mean_network_holds_each_distribution_mean() {
        let text = "[model]\nkind = \"hetsynlif\"\ndt = 0.005\ntau_init = { dist = \"normal\", mean = 0.2, std = 0.02 }\n\
                    layers = [{ size = 4, recurrent = true }, { size = 3, tau_init = { dist = \"uniform\", low = 0.01, high = 0.03 } }]\n\
                    [model.readout]\nloss = \"last\"\n[task]\nkind = \"dms\"\n";
        let config = Config::from_toml(text, &[]).unwrap();
        let mean = mean_decay_network(&config, 30, 2);
        let initial = super::super::initial_network(&config, 30, 2);
        for ((info, values), (_, start)) in mean.params().iter().zip(initial.params()) {
            assert_eq!(values.len(), start.len(), "{}", info.name);
            if info.kind != ParamKind::Decay {
                continue;
            }
            let mu = if info.name.starts_with("hidden.1") { 0.02 } else { 0.2 };
            let want = (-0.005f64 / mu).exp() as f32;
            assert!(values.iter().all(|v| *v == want), "{}: {:?} vs {want}", info.name, &values[..3]);
            assert!(start.iter().any(|v| *v != want), "{}: the initial draw is spread", info.name);
        }
    }

    #[test]
    fn resets_are_every_scope_with_every_target() {
        let none = EvalOptions::default();
        assert!(none.resets().is_empty());
        let flag = EvalOptions { reset_long_tau: true, ..EvalOptions::default() };
        let suffixes = |o: &EvalOptions| o.resets().into_iter().map(|r| r.2).collect::<Vec<_>>();
        assert_eq!(suffixes(&flag), ["+reset_long_tau"]);
        let both = EvalOptions {
            reset_to: vec![ResetTarget::Initial, ResetTarget::Mean],
            reset_synapses: vec![ResetScope::FirstInput],
            ..EvalOptions::default()
        };
        assert_eq!(suffixes(&both), ["+reset_first_input_to_initial", "+reset_first_input_to_mean"]);
    }
}
