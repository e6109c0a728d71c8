//! The trainer loop, generic over the task: batches from the task, exact
//! gradients from the network, Adam/AdamW steps, decay clamping, periodic
//! evaluation on the held-out validation and test sets, metrics, checkpoints.
//! A task without a validation set (`validation = "none"`, `validation_size = 0`)
//! selects the last evaluation and writes no `best.safetensors`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::freeze::FrozenDecays;
use super::optim::{clip_grad_norm, Adam, AdamConfig};
use super::schedule::Schedule;
use super::tau_stats::{input_group_tau, tau_stats, GroupTau, TauStats};
use crate::config::{Config, NonFinite, OptimizerKind, ScheduleConfig};
use crate::io::atomic::write_atomic;
use crate::io::checkpoint::{self, Checkpoint, ResumeData, Role};
use crate::logging::sig4;
use crate::model::network::Objective;
use crate::model::{init, BatchStats, Decays, Dropout, Network, ParamKind, RateRegulariser};
use crate::tasks::{self, Sample, Task, TaskKind};

/// RNG streams of a run, all from `config.seed`.
const STREAM_INIT: u64 = 10;
const STREAM_TRAIN: u64 = 11;

/// Samples evaluated together (bounds memory of evaluation).
const EVAL_CHUNK: usize = 256;

#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Show the progress bar.
    pub progress: bool,
}

/// One row of `metrics.csv`. Accuracies are empty for regression tasks; the
/// task's own figures (e.g. repeat distances) follow as extra columns.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsRow {
    /// Optimizer steps taken.
    pub step: u64,
    /// Iterations done (trial-based tasks: equals `step`).
    pub iteration: u64,
    /// Epochs done (dataset tasks; fractional between epoch ends).
    pub epoch: Option<f64>,
    /// Mean over the iterations since the previous row.
    pub train_loss: f64,
    pub train_accuracy: Option<f64>,
    /// Empty without a validation set.
    pub validation_loss: Option<f64>,
    pub validation_accuracy: Option<f64>,
    pub test_loss: f64,
    pub test_accuracy: Option<f64>,
    /// Learning rate of the weights at the last step.
    pub lr: f64,
    /// Mean hidden firing rate over the training batches since the previous row, Hz.
    pub mean_rate_hz: f64,
    /// Batches skipped since the previous row for a non-finite loss or gradient.
    pub skipped_batches: u64,
    pub elapsed_s: f64,
    /// Task figures on the test set, e.g. `distance_2_1`.
    #[serde(skip)]
    pub test_metrics: Vec<(String, f64)>,
}

const METRICS_COLUMNS: [&str; 13] = [
    "step",
    "iteration",
    "epoch",
    "train_loss",
    "train_accuracy",
    "validation_loss",
    "validation_accuracy",
    "test_loss",
    "test_accuracy",
    "lr",
    "mean_rate_hz",
    "skipped_batches",
    "elapsed_s",
];

impl MetricsRow {
    fn values(&self) -> Vec<String> {
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut out = vec![
            self.step.to_string(),
            self.iteration.to_string(),
            opt(self.epoch),
            self.train_loss.to_string(),
            opt(self.train_accuracy),
            opt(self.validation_loss),
            opt(self.validation_accuracy),
            self.test_loss.to_string(),
            opt(self.test_accuracy),
            self.lr.to_string(),
            self.mean_rate_hz.to_string(),
            self.skipped_batches.to_string(),
            self.elapsed_s.to_string(),
        ];
        out.extend(self.test_metrics.iter().map(|(_, v)| v.to_string()));
        out
    }
}

/// Reads `null` (how JSON writes NaN and infinities) back as NaN.
fn float_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// `summary.json`: the honest figures, labelled. The model is selected on the
/// validation set (accuracy for classification, ties broken by lower loss; loss
/// for regression), or, without a validation set, is the last evaluation's
/// (`selected_on = "last"`: the `*_at_best_validation` figures are then the
/// last ones); test figures of the best-on-test evaluation are reported only
/// because papers do, and are labelled as such.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub name: String,
    pub run_dir: String,
    pub model: String,
    pub seed: u64,
    pub steps: u64,
    #[serde(deserialize_with = "float_or_nan")]
    pub elapsed_s: f64,
    /// Samples of the validation set (0: none, every training sample trained on).
    #[serde(default)]
    pub validation_samples: usize,
    /// `validation_accuracy` or `validation_loss`; `last` without a validation set.
    pub selected_on: String,
    /// How the selected model was chosen and which figures are its, in words.
    #[serde(default)]
    pub selection: String,
    /// The selected model's file in the run directory (`checkpoints/best.safetensors`,
    /// or `checkpoints/last.safetensors` when `selected_on` is `last`).
    #[serde(default)]
    pub selected_checkpoint: String,
    /// Step of the selected model (`best.safetensors`; the last step when `selected_on` is `last`).
    pub best_validation_step: u64,
    /// Its epoch (dataset tasks).
    #[serde(default)]
    pub best_validation_epoch: Option<f64>,
    pub best_validation_accuracy: Option<f64>,
    #[serde(deserialize_with = "float_or_nan")]
    pub best_validation_loss: f64,
    /// Test figures of the model selected on validation.
    pub test_accuracy_at_best_validation: Option<f64>,
    #[serde(deserialize_with = "float_or_nan")]
    pub test_loss_at_best_validation: f64,
    pub test_metrics_at_best_validation: BTreeMap<String, f64>,
    /// After the last step.
    pub last_validation_accuracy: Option<f64>,
    pub last_test_accuracy: Option<f64>,
    #[serde(deserialize_with = "float_or_nan")]
    pub last_test_loss: f64,
    #[serde(deserialize_with = "float_or_nan")]
    pub last_train_loss: f64,
    pub last_test_metrics: BTreeMap<String, f64>,
    /// `test_accuracy` or `test_loss`: the `best_test_*` figures are selected
    /// on the test set (optimistic; the published protocol).
    #[serde(default)]
    pub best_test_selected_on: String,
    /// `checkpoints/best_on_test.safetensors` with `output.save_best_on_test`, else `null`.
    #[serde(default)]
    pub best_on_test_checkpoint: Option<String>,
    /// Best test figure over all evaluations (selected on the test set: optimistic).
    pub best_test_accuracy: Option<f64>,
    #[serde(deserialize_with = "float_or_nan")]
    pub best_test_loss: f64,
    pub best_test_step: u64,
    #[serde(default)]
    pub best_test_epoch: Option<f64>,
    /// Epochs trained (dataset tasks).
    #[serde(default)]
    pub epochs: Option<f64>,
    /// Learned time constants per decay tensor of the model selected on
    /// validation and of the last model.
    pub tau_at_best_validation: BTreeMap<String, TauStats>,
    pub tau_last: BTreeMap<String, TauStats>,
    /// Time constants of the first hidden layer's input synapses per input-channel
    /// group of the task (e.g. DMS `left_cue`, `right_cue`, `noise`; HetSynLIF only).
    #[serde(default)]
    pub input_tau_at_best_validation: BTreeMap<String, GroupTau>,
    #[serde(default)]
    pub input_tau_last: BTreeMap<String, GroupTau>,
    /// Provenance of the process that finished the run: hetsyn's version, the
    /// git commit it was built from ("unknown" outside a checkout), its command
    /// line and host.
    #[serde(default)]
    pub hetsyn_version: String,
    #[serde(default)]
    pub git_commit: String,
    #[serde(default)]
    pub command_line: String,
    #[serde(default)]
    pub host: String,
}

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
    for chunk in samples.chunks(EVAL_CHUNK) {
        let (stats, _) = net.loss_and_grad(chunk, steps, &objective, Dropout::None, false);
        loss += stats.loss * stats.samples as f64;
        rate += stats.mean_rate_hz * stats.samples as f64;
        total.samples += stats.samples;
        total.correct += stats.correct;
    }
    let n = total.samples.max(1) as f64;
    total.loss = loss / n;
    total.task_loss = total.loss;
    total.mean_rate_hz = rate / n;
    // task figures need the readout traces (regression tasks have few held-out samples)
    let mut metrics: Vec<(String, f64)> = Vec::new();
    if shape.kind == TaskKind::Regression {
        let per_sample: Vec<Vec<(String, f64)>> = samples
            .par_iter()
            .map(|s| {
                let tape = net.forward(s.input.layer_input(), steps, Vec::new());
                task.output_metrics(net.output(&tape))
            })
            .collect();
        for sample in &per_sample {
            for (k, (name, v)) in sample.iter().enumerate() {
                match metrics.get_mut(k) {
                    Some(m) => m.1 += v / n,
                    None => metrics.push((name.clone(), v / n)),
                }
            }
        }
    }
    let accuracy = (shape.kind == TaskKind::Classification).then(|| total.accuracy());
    Evaluation { stats: total, accuracy, metrics }
}

/// How long a run is, in optimizer steps, resolved against the task (epochs
/// of a dataset task become steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub iterations: u64,
    pub eval_every: u64,
    /// Optimizer steps per epoch (dataset tasks).
    pub steps_per_epoch: Option<u64>,
}

impl Plan {
    pub fn new(config: &Config, task: &dyn Task) -> Plan {
        let train = &config.train;
        let steps_per_epoch = task.train_size().map(|n| tasks::steps_per_epoch(n, train.batch_size));
        match steps_per_epoch {
            Some(per_epoch) if train.epochs > 0 => Plan {
                iterations: train.epochs * per_epoch,
                eval_every: train.eval_every_epochs * per_epoch,
                steps_per_epoch,
            },
            _ => Plan { iterations: train.iterations, eval_every: train.eval_every, steps_per_epoch },
        }
    }

    /// Epochs completed after `step` optimizer steps (`step` for trial tasks).
    pub fn epoch(&self, step: u64) -> u64 {
        self.steps_per_epoch.map_or(step, |s| step / s)
    }

    /// Epochs (fractional) after `step` optimizer steps, for dataset tasks.
    pub fn epochs_done(&self, step: u64) -> Option<f64> {
        self.steps_per_epoch.map(|s| step as f64 / s as f64)
    }
}

fn schedule(config: &Config, plan: &Plan) -> Schedule {
    match config.train.schedule {
        ScheduleConfig::Constant => Schedule::Constant,
        ScheduleConfig::Step { every, gamma } => Schedule::Step { every, gamma },
        ScheduleConfig::WarmupCosine { span, span_epochs, warmup_fraction, hold_fraction } => {
            let span = match plan.steps_per_epoch {
                Some(per_epoch) if span_epochs > 0.0 => (span_epochs * per_epoch as f64).round() as u64,
                _ => span,
            };
            Schedule::WarmupCosine { span, warmup_fraction, hold_fraction }
        }
    }
}

/// Clamps every learnable decay to `[lo, hi]` (after each optimizer step).
pub fn clamp_decays(net: &mut Network<f32>, lo: f32, hi: f32) {
    for layer in &mut net.layers {
        match &mut layer.decays {
            Decays::Synapse { input, recurrent, .. } => {
                input.iter_mut().chain(recurrent.iter_mut().flatten()).for_each(|d| *d = d.clamp(lo, hi));
            }
            Decays::Neuron { rho, learnable: true } => rho.iter_mut().for_each(|d| *d = d.clamp(lo, hi)),
            Decays::Neuron { .. } => {}
        }
    }
}

/// Seed of the dropout masks of one iteration.
fn dropout_seed(seed: u64, iteration: u64) -> u64 {
    // splitmix64 of (seed, iteration)
    let mut z = seed ^ iteration.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The rows of metrics.csv as text records (header first), kept whole so that
/// the file is rewritten atomically and a resumed run continues it exactly.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct MetricsLog {
    records: Vec<Vec<String>>,
}

impl MetricsLog {
    fn push(&mut self, row: &MetricsRow) {
        if self.records.is_empty() {
            let mut header: Vec<String> = METRICS_COLUMNS.iter().map(|c| c.to_string()).collect();
            header.extend(row.test_metrics.iter().map(|(name, _)| format!("test_{name}")));
            self.records.push(header);
        }
        self.records.push(row.values());
    }

    fn write(&self, path: &Path) -> Result<()> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        for record in &self.records {
            writer.write_record(record)?;
        }
        let bytes = writer.into_inner().context("cannot format metrics")?;
        write_atomic(path, &bytes)
    }
}

/// Sums over the iterations since the last metrics row.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Window {
    #[serde(deserialize_with = "float_or_nan")]
    loss: f64,
    correct: usize,
    samples: usize,
    #[serde(deserialize_with = "float_or_nan")]
    rate: f64,
    iterations: u64,
    skipped: u64,
}

/// Everything besides model and optimizer that a resumed run needs to continue
/// bit for bit (stored as JSON in resumable checkpoints).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    /// Iterations completed.
    iteration: u64,
    /// Position of the training-trial generator (a u128, as text).
    train_rng_word_pos: String,
    window: Window,
    summary: RunSummary,
    metrics: MetricsLog,
    /// Seconds spent before this process.
    elapsed_s: f64,
}

/// Set by SIGINT/SIGTERM; the trainer saves a resumable checkpoint and stops.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The signal that interrupted training (0: none).
static SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    SIGNAL.store(signal, std::sync::atomic::Ordering::SeqCst);
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The error a run stopped by SIGINT or SIGTERM ends with, after its resumable
/// checkpoint; the process exits with `128 + signal` (130, 143), as shells do.
#[derive(Debug)]
pub struct Interrupted {
    pub signal: i32,
    pub message: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Interrupted {}

/// Makes SIGINT and SIGTERM stop training after the current iteration, with a
/// resumable checkpoint.
pub fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
    }
}

/// Whether process `pid` exists and is not a zombie (a killed process whose
/// parent has not collected it yet, e.g. after `kill -9` of a background job).
fn process_runs(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    if pid <= 0 || unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    // Linux: the state follows the parenthesised command name in /proc/<pid>/stat
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()));
    !matches!(state, Some('Z' | 'X'))
}

/// An exclusive claim on a run directory (`<run>/.lock` holding the owner's pid
/// and host), released on drop. A lock of this host whose process no longer
/// runs is taken over; a lock of another host never is (its process cannot be
/// checked from here), and the error says how to clear it.
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    pub fn acquire(run_dir: &Path) -> Result<RunLock> {
        let path = run_dir.join(".lock");
        let host = crate::provenance::host();
        for _ in 0..3 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    use std::io::Write;
                    writeln!(file, "{} {host}", std::process::id())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    let mut words = owner.split_whitespace();
                    let pid: i32 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                    // locks of earlier versions hold only a pid: this host's
                    let owner_host = words.next().unwrap_or(&host);
                    if owner_host != host {
                        bail!(
                            "run directory {} is locked by process {pid} on host {owner_host} (lock file {}); if no hetsyn runs there in this directory any more, remove {} and try again",
                            run_dir.display(),
                            path.display(),
                            path.display()
                        );
                    }
                    if process_runs(pid) {
                        bail!(
                            "run directory {} is in use by process {pid} on this host (lock file {}); wait for it or remove the lock if that process is not hetsyn",
                            run_dir.display(),
                            path.display()
                        );
                    }
                    tracing::warn!(lock = %path.display(), pid, "taking over the lock of a process that no longer runs");
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => return Err(e).with_context(|| format!("cannot create lock file {}", path.display())),
            }
        }
        bail!("cannot lock run directory {}", run_dir.display())
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The network a run of `config` starts from: `init::build` drawing from stream
/// `STREAM_INIT` (10) of a ChaCha8 generator seeded with `config.seed` (`hetsyn plot`
/// rebuilds it to compare learned time constants with the initial ones).
pub fn initial_network(config: &Config, inputs: usize, outputs: usize) -> Network<f32> {
    let mut init_rng = ChaCha8Rng::seed_from_u64(config.seed);
    init_rng.set_stream(STREAM_INIT);
    init::build(&config.model.network_spec(), inputs, outputs, &mut init_rng)
}

/// Trains the model of `config` into `run_dir` and returns the summary.
///
/// With `resume`, a checkpoint written by an earlier run into the same
/// directory, training continues from it and produces the same metrics rows
/// (but for `elapsed_s`) and parameters as an uninterrupted run.
pub fn train(
    config: &Config,
    run_dir: &Path,
    options: &TrainOptions,
    resume: Option<Checkpoint>,
) -> Result<RunSummary> {
    let started = Instant::now();
    // the task first: a config whose data is missing leaves no run directory behind
    let mut task: Box<dyn Task> = tasks::build(config)?;
    let checkpoints = run_dir.join("checkpoints");
    std::fs::create_dir_all(&checkpoints)
        .with_context(|| format!("cannot create run directory {}", checkpoints.display()))?;
    let _lock = RunLock::acquire(run_dir)?;
    crate::logging::tee_to(&run_dir.join("train.log"))?;
    crate::logging::line(&format!(
        "=== {} {} at {} UTC on {}, hetsyn {} (commit {}): {}",
        if resume.is_some() { "resumed" } else { "started" },
        run_dir.display(),
        crate::io::atomic::utc_timestamp(),
        crate::provenance::host(),
        crate::provenance::VERSION,
        crate::provenance::GIT_COMMIT,
        crate::provenance::command_line()
    ));
    let last_path = checkpoints.join("last.safetensors");
    if resume.is_none() && last_path.exists() {
        bail!(
            "run directory {} already holds a run ({}); continue it with --resume {} or choose another --out",
            run_dir.display(),
            last_path.display(),
            run_dir.display()
        );
    }
    if resume.is_none() {
        write_atomic(&run_dir.join("config.toml"), config.to_toml()?.as_bytes())?;
    }

    let shape = task.shape();
    let objective = objective(config);
    let mut train_rng = ChaCha8Rng::seed_from_u64(config.seed);
    train_rng.set_stream(STREAM_TRAIN);

    let mut net = initial_network(config, shape.channels, shape.outputs);
    let frozen = FrozenDecays::new(config, &net);
    if config.model.frozen_decay_fraction > 0.0 && frozen.count() == 0 {
        tracing::warn!("model.frozen_decay_fraction has no effect: the model has no learnable decays");
    }
    let train = &config.train;
    let adam_config = AdamConfig {
        beta1: train.beta1,
        beta2: train.beta2,
        eps: train.eps,
        weight_decay: train.weight_decay,
        decoupled: train.optimizer == OptimizerKind::Adamw,
    };
    let kinds: Vec<ParamKind> = net.params().iter().map(|(info, _)| info.kind).collect();
    let sizes: Vec<usize> = net.params().iter().map(|(_, data)| data.len()).collect();
    let mut adam = Adam::new(adam_config, &sizes);
    let mut start = 0;
    let mut window = Window::default();
    let mut log = MetricsLog::default();
    let mut elapsed_before = 0.0;
    let mut resumed_summary = None;
    if let Some(ckpt) = resume {
        let at = || format!("cannot resume from {}", last_path.display());
        let state: TrainerState = serde_json::from_str(
            ckpt.trainer_state.as_deref().context("the checkpoint has no trainer state").with_context(at)?,
        )
        .context("the trainer state is not valid")
        .with_context(at)?;
        let optimizer = ckpt.optimizer.context("the checkpoint has no optimizer state").with_context(at)?;
        adam = Adam::from_state(adam_config, optimizer, &sizes).with_context(at)?;
        net = ckpt.network;
        let word_pos: u128 = state.train_rng_word_pos.parse().context("bad generator position").with_context(at)?;
        train_rng.set_word_pos(word_pos);
        start = state.iteration;
        window = state.window;
        log = state.metrics;
        elapsed_before = state.elapsed_s;
        resumed_summary = Some(state.summary);
        log.write(&run_dir.join("metrics.csv"))?;
        tracing::info!(iteration = start, "resuming");
    }
    let plan = Plan::new(config, task.as_ref());
    let schedule = schedule(config, &plan);
    let (decay_min, decay_max) = (config.model.decay_min as f32, config.model.decay_max as f32);

    let bar = if options.progress { ProgressBar::new(plan.iterations) } else { ProgressBar::hidden() };
    bar.set_position(start);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );

    let classification = shape.kind == TaskKind::Classification;
    let mut summary = RunSummary {
        name: config.name.clone(),
        run_dir: run_dir.display().to_string(),
        model: format!("{:?}", config.model.kind).to_lowercase(),
        seed: config.seed,
        steps: 0,
        elapsed_s: 0.0,
        validation_samples: 0,
        selected_on: String::new(),
        selection: String::new(),
        selected_checkpoint: String::new(),
        best_validation_step: 0,
        best_validation_epoch: None,
        best_validation_accuracy: None,
        best_validation_loss: f64::INFINITY,
        test_accuracy_at_best_validation: None,
        test_loss_at_best_validation: f64::NAN,
        test_metrics_at_best_validation: BTreeMap::new(),
        last_validation_accuracy: None,
        last_test_accuracy: None,
        last_test_loss: f64::NAN,
        last_train_loss: f64::NAN,
        last_test_metrics: BTreeMap::new(),
        best_test_selected_on: String::new(),
        best_on_test_checkpoint: None,
        best_test_accuracy: None,
        best_test_loss: f64::INFINITY,
        best_test_step: 0,
        best_test_epoch: None,
        epochs: None,
        tau_at_best_validation: BTreeMap::new(),
        tau_last: BTreeMap::new(),
        input_tau_at_best_validation: BTreeMap::new(),
        input_tau_last: BTreeMap::new(),
        hetsyn_version: String::new(),
        git_commit: String::new(),
        command_line: String::new(),
        host: String::new(),
    };
    let input_groups = task.input_groups();
    if let Some(s) = resumed_summary {
        summary = s;
    }
    summary.hetsyn_version = crate::provenance::VERSION.into();
    summary.git_commit = crate::provenance::GIT_COMMIT.into();
    summary.command_line = crate::provenance::command_line();
    summary.host = crate::provenance::host();
    // without a validation set the selected model is the last evaluation's
    let validating = !task.validation().is_empty();
    describe_selection(&mut summary, task.validation().len(), classification, config.output.save_best_on_test);
    let tau_threshold_ms = config.output.tau_threshold * 1000.0;
    let elapsed = |started: &Instant| elapsed_before + started.elapsed().as_secs_f64();

    let mut last_metrics = serde_json::Value::Null;
    for iteration in start..plan.iterations {
        let samples = task.train_batch(iteration, train.batch_size, &mut train_rng);
        let dropout = Dropout::Random { p: config.model.dropout, seed: dropout_seed(config.seed, iteration) };
        let (stats, grad) = net.loss_and_grad(&samples, shape.steps, &objective, dropout, true);
        let mut grad = grad.context("gradient was requested")?;
        let mut grads: Vec<&mut [f32]> = grad.params_mut();
        frozen.zero_gradients(&mut grads);
        let bad_gradient = grads.iter().position(|g| g.iter().any(|v| !v.is_finite()));
        let problem = if !stats.loss.is_finite() {
            Some(format!("the training loss is {}", stats.loss))
        } else {
            bad_gradient.map(|k| format!("the gradient of `{}` is not finite", net.params()[k].0.name))
        };
        let skip = match (&problem, train.on_nonfinite) {
            (None, _) => false,
            (Some(problem), NonFinite::Stop) => bail!(
                "iteration {iteration}: {problem}; stopped ({}; try a lower train.lr, train.grad_clip, or train.on_nonfinite = \"skip\")",
                if last_path.exists() {
                    format!("the last good checkpoint is {}", last_path.display())
                } else {
                    "no checkpoint was written yet".to_string()
                }
            ),
            (Some(problem), NonFinite::Skip) => {
                tracing::warn!(iteration, "{problem}: batch skipped");
                true
            }
        };
        if train.grad_clip > 0.0 && !skip {
            clip_grad_norm(&mut grads, train.grad_clip);
        }
        let factor = schedule.factor(iteration);
        let lrs: Vec<f64> = kinds
            .iter()
            .map(|k| match k {
                ParamKind::Weight => train.lr * factor,
                ParamKind::Decay => train.decay_lr * factor,
            })
            .collect();
        if skip {
            window.skipped += 1;
        } else {
            let grads: Vec<&[f32]> = grads.into_iter().map(|g| &*g).collect();
            adam.step(&mut net.params_mut(), &grads, &lrs);
            clamp_decays(&mut net, decay_min, decay_max);
            frozen.restore(&mut net.params_mut());
            window.loss += stats.loss;
            window.correct += stats.correct;
            window.samples += stats.samples;
            window.rate += stats.mean_rate_hz;
            window.iterations += 1;
        }
        let step = iteration + 1;
        bar.inc(1);

        if step % plan.eval_every == 0 || step == plan.iterations {
            let validation = validating.then(|| evaluate(&net, task.as_ref(), task.validation(), &objective));
            let test = evaluate(&net, task.as_ref(), task.test(), &objective);
            let row = MetricsRow {
                step,
                iteration: step,
                epoch: plan.epochs_done(step),
                train_loss: window.loss / window.iterations.max(1) as f64,
                train_accuracy: classification.then(|| window.correct as f64 / window.samples.max(1) as f64),
                validation_loss: validation.as_ref().map(|v| v.stats.loss),
                validation_accuracy: validation.as_ref().and_then(|v| v.accuracy),
                test_loss: test.stats.loss,
                test_accuracy: test.accuracy,
                lr: train.lr * factor,
                mean_rate_hz: window.rate / window.iterations.max(1) as f64,
                skipped_batches: window.skipped,
                elapsed_s: elapsed(&started),
                test_metrics: test.metrics.clone(),
            };
            window = Window::default();
            let percent = |a: Option<f64>| a.map(|a| format!("{:.1}%", 100.0 * a)).unwrap_or_else(|| "-".into());
            // one plain line per evaluation (above the bar on a terminal), in train.log too
            let sig = |v: Option<f64>| v.map(sig4).unwrap_or_else(|| "-".into());
            bar.suspend(|| {
                tracing::info!(
                    step,
                    train_loss = %sig4(row.train_loss),
                    validation_loss = %sig(row.validation_loss),
                    test_loss = %sig4(row.test_loss),
                    validation_accuracy = %percent(row.validation_accuracy),
                    test_accuracy = %percent(row.test_accuracy),
                    rate_hz = %sig4(row.mean_rate_hz),
                    "evaluated"
                )
            });
            bar.set_message(format!(
                "loss {:.4} val {} test {} {:.1} Hz",
                row.train_loss,
                percent(row.validation_accuracy),
                percent(row.test_accuracy),
                row.mean_rate_hz
            ));
            let mut metrics = serde_json::to_value(&row)?;
            for (name, v) in &row.test_metrics {
                metrics[format!("test_{name}")] = serde_json::json!(v);
            }
            let validation_loss = row.validation_loss.unwrap_or(f64::NAN);
            let better = !validating
                || match (row.validation_accuracy, summary.best_validation_accuracy) {
                    (Some(a), Some(best)) => a > best || (a == best && validation_loss < summary.best_validation_loss),
                    (Some(_), None) => true,
                    (None, _) => validation_loss < summary.best_validation_loss,
                };
            let test_metrics: BTreeMap<String, f64> = row.test_metrics.iter().cloned().collect();
            if better {
                summary.best_validation_accuracy = row.validation_accuracy;
                summary.best_validation_loss = validation_loss;
                summary.best_validation_step = step;
                summary.best_validation_epoch = row.epoch;
                summary.test_accuracy_at_best_validation = row.test_accuracy;
                summary.test_loss_at_best_validation = row.test_loss;
                summary.test_metrics_at_best_validation = test_metrics.clone();
                summary.tau_at_best_validation = tau_stats(&net, tau_threshold_ms);
                summary.input_tau_at_best_validation = input_group_tau(&net, &input_groups, tau_threshold_ms);
                if validating {
                    let path = checkpoints.join("best.safetensors");
                    let role = Role::Selected(&summary.selected_on);
                    checkpoint::save(&path, &net, config, step, plan.epoch(step), &metrics, role)?;
                }
            }
            let best_test = match (row.test_accuracy, summary.best_test_accuracy) {
                (Some(a), Some(best)) => a > best,
                (Some(_), None) => true,
                (None, _) => row.test_loss < summary.best_test_loss,
            };
            if best_test {
                summary.best_test_accuracy = row.test_accuracy;
                summary.best_test_loss = row.test_loss;
                summary.best_test_step = step;
                summary.best_test_epoch = row.epoch;
                if config.output.save_best_on_test {
                    let path = checkpoints.join("best_on_test.safetensors");
                    let role = Role::Selected(&summary.best_test_selected_on);
                    checkpoint::save(&path, &net, config, step, plan.epoch(step), &metrics, role)?;
                }
            }
            summary.last_test_accuracy = row.test_accuracy;
            summary.last_validation_accuracy = row.validation_accuracy;
            summary.last_train_loss = row.train_loss;
            summary.last_test_loss = row.test_loss;
            summary.last_test_metrics = test_metrics;
            log.push(&row);
            log.write(&run_dir.join("metrics.csv"))?;
            last_metrics = metrics;
        }
        let interrupted = INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst);
        let evaluated = step % plan.eval_every == 0 || step == plan.iterations;
        let periodic = train.checkpoint_every > 0 && step % train.checkpoint_every == 0;
        if evaluated || periodic || interrupted {
            let state = TrainerState {
                iteration: step,
                train_rng_word_pos: train_rng.get_word_pos().to_string(),
                window: window.clone(),
                summary: summary.clone(),
                metrics: log.clone(),
                elapsed_s: elapsed(&started),
            };
            let state = serde_json::to_string(&state)?;
            let resume = ResumeData { optimizer: adam.state(), trainer_state: &state };
            checkpoint::save(&last_path, &net, config, step, plan.epoch(step), &last_metrics, Role::Resumable(resume))?;
        }
        if interrupted {
            bar.finish_and_clear();
            let message = format!(
                "interrupted after iteration {step}; a resumable checkpoint is in {}: continue with `hetsyn train --resume {}`",
                last_path.display(),
                run_dir.display()
            );
            return Err(Interrupted { signal: SIGNAL.load(std::sync::atomic::Ordering::SeqCst), message }.into());
        }
    }
    bar.finish_and_clear();
    summary.steps = plan.iterations;
    summary.epochs = plan.epochs_done(plan.iterations);
    summary.tau_last = tau_stats(&net, tau_threshold_ms);
    summary.input_tau_last = input_group_tau(&net, &input_groups, tau_threshold_ms);
    summary.elapsed_s = elapsed(&started);
    write_atomic(&run_dir.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    Ok(summary)
}

/// Fills in the fields of `summary` that say how its model is selected (a
/// function of the task and config, so also set on `--resume`).
fn describe_selection(summary: &mut RunSummary, validation_samples: usize, classification: bool, best_on_test: bool) {
    let test_figure = if classification { "test_accuracy" } else { "test_loss" };
    let best_test = format!(
        "best_test_* are selected on the test set ({test_figure}; optimistic, reported because papers do){}",
        if best_on_test { ", saved as checkpoints/best_on_test.safetensors" } else { "" }
    );
    summary.validation_samples = validation_samples;
    if validation_samples > 0 {
        let figure = if classification { "validation_accuracy" } else { "validation_loss" };
        summary.selected_on = figure.into();
        summary.selected_checkpoint = "checkpoints/best.safetensors".into();
        summary.selection = format!(
            "selected on the validation set ({figure}, {validation_samples} held-out samples): the *_at_best_validation figures are those of checkpoints/best.safetensors; {best_test}"
        );
    } else {
        summary.selected_on = "last".into();
        summary.selected_checkpoint = "checkpoints/last.safetensors".into();
        summary.selection = format!(
            "no validation set (every training sample trained on): the selected model is the last evaluation's (checkpoints/last.safetensors), so the *_at_best_validation figures and best_validation_step/epoch are the last epoch's and best_validation_accuracy/loss are null; {best_test}"
        );
    }
    summary.best_test_selected_on = test_figure.into();
    summary.best_on_test_checkpoint = best_on_test.then(|| "checkpoints/best_on_test.safetensors".into());
}

/// Creates and returns the default run directory `<dir>/<name>-<UTC timestamp>`,
/// with a numeric suffix (`-1`, `-2`, ...) if that exists already. Creating is the
/// claim, so two runs started in the same second never share a directory.
pub fn reserve_run_dir(config: &Config) -> Result<PathBuf> {
    let parent = Path::new(&config.output.dir);
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create output.dir {}", parent.display()))?;
    let base = parent.join(format!("{}-{}", config.name, crate::io::atomic::utc_timestamp()));
    let mut dir = base.clone();
    for k in 1..10_000 {
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                dir = PathBuf::from(format!("{}-{k}", base.display()));
            }
            Err(e) => return Err(e).with_context(|| format!("cannot create run directory {}", dir.display())),
        }
    }
    bail!("cannot find a free run directory name next to {}", base.display())
}

#[cfg(test)]
mod lock_tests {
    use super::process_runs;

    #[test]
    fn run_directories_started_together_differ() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[model]\nkind = \"homneulif\"\ntau_init = {{ dist = \"constant\", value = 0.02 }}\nlayers = [{{ size = 4 }}]\n[model.readout]\nloss = \"last\"\n[task]\nkind = \"dms\"\n[output]\ndir = {:?}\n",
            dir.path().display().to_string()
        );
        let config = crate::config::Config::from_toml(&text, &[]).unwrap();
        let dirs: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| super::reserve_run_dir(&config).unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let unique: std::collections::BTreeSet<_> = dirs.iter().collect();
        assert_eq!(unique.len(), 8, "{dirs:?}");
        assert!(dirs.iter().all(|d| d.is_dir()));
    }

    #[test]
    fn zombies_and_missing_processes_do_not_hold_a_lock() {
        assert!(process_runs(std::process::id() as i32));
        assert!(!process_runs(0) && !process_runs(-1));
        // a child that exited but is not yet waited for is a zombie
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!process_runs(pid), "zombie {pid} counted as running");
        child.wait().unwrap();
        assert!(!process_runs(pid));
    }
}
