//! The trainer loop, generic over the task: batches from the task, exact
//! gradients from the network, Adam/AdamW steps, decay clamping, periodic
//! evaluation on the held-out validation and test sets, metrics, checkpoints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use super::optim::{clip_grad_norm, Adam, AdamConfig};
use super::schedule::Schedule;
use super::tau_stats::{tau_stats, TauStats};
use crate::config::{Config, OptimizerKind, ScheduleConfig};
use crate::io::atomic::write_atomic;
use crate::io::checkpoint;
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
    /// Mean over the iterations since the previous row.
    pub train_loss: f64,
    pub train_accuracy: Option<f64>,
    pub validation_loss: f64,
    pub validation_accuracy: Option<f64>,
    pub test_loss: f64,
    pub test_accuracy: Option<f64>,
    /// Learning rate of the weights at the last step.
    pub lr: f64,
    /// Mean hidden firing rate over the training batches since the previous row, Hz.
    pub mean_rate_hz: f64,
    pub elapsed_s: f64,
    /// Task figures on the test set, e.g. `distance_2_1`.
    #[serde(skip)]
    pub test_metrics: Vec<(String, f64)>,
}

const METRICS_COLUMNS: [&str; 11] = [
    "step",
    "iteration",
    "train_loss",
    "train_accuracy",
    "validation_loss",
    "validation_accuracy",
    "test_loss",
    "test_accuracy",
    "lr",
    "mean_rate_hz",
    "elapsed_s",
];

impl MetricsRow {
    fn values(&self) -> Vec<String> {
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut out = vec![
            self.step.to_string(),
            self.iteration.to_string(),
            self.train_loss.to_string(),
            opt(self.train_accuracy),
            self.validation_loss.to_string(),
            opt(self.validation_accuracy),
            self.test_loss.to_string(),
            opt(self.test_accuracy),
            self.lr.to_string(),
            self.mean_rate_hz.to_string(),
            self.elapsed_s.to_string(),
        ];
        out.extend(self.test_metrics.iter().map(|(_, v)| v.to_string()));
        out
    }
}

/// `summary.json`: the honest figures, labelled. The model is selected on the
/// validation set (accuracy for classification, ties broken by lower loss; loss
/// for regression); test figures of the best-on-test evaluation are reported
/// only because papers do, and are labelled as such.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub name: String,
    pub run_dir: String,
    pub model: String,
    pub seed: u64,
    pub steps: u64,
    pub elapsed_s: f64,
    /// `validation_accuracy` or `validation_loss`.
    pub selected_on: String,
    /// Step of the model saved as `best.safetensors`.
    pub best_validation_step: u64,
    pub best_validation_accuracy: Option<f64>,
    pub best_validation_loss: f64,
    /// Test figures of the model selected on validation.
    pub test_accuracy_at_best_validation: Option<f64>,
    pub test_loss_at_best_validation: f64,
    pub test_metrics_at_best_validation: BTreeMap<String, f64>,
    /// After the last step.
    pub last_validation_accuracy: Option<f64>,
    pub last_test_accuracy: Option<f64>,
    pub last_test_loss: f64,
    pub last_train_loss: f64,
    pub last_test_metrics: BTreeMap<String, f64>,
    /// Best test figure over all evaluations (selected on the test set: optimistic).
    pub best_test_accuracy: Option<f64>,
    pub best_test_loss: f64,
    pub best_test_step: u64,
    /// Learned time constants per decay tensor of the model selected on
    /// validation and of the last model.
    pub tau_at_best_validation: BTreeMap<String, TauStats>,
    pub tau_last: BTreeMap<String, TauStats>,
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
    let shape = task.shape();
    let objective = Objective { rate_regulariser: None, ..*objective };
    let mut total = BatchStats::default();
    let (mut loss, mut rate) = (0.0, 0.0);
    for chunk in samples.chunks(EVAL_CHUNK) {
        let (stats, _) = net.loss_and_grad(chunk, shape.steps, &objective, Dropout::None, false);
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
                let tape = net.forward(&s.input, shape.steps, Vec::new());
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

fn schedule(config: &Config) -> Schedule {
    match config.train.schedule {
        ScheduleConfig::Constant => Schedule::Constant,
        ScheduleConfig::Step { every, gamma } => Schedule::Step { every, gamma },
        ScheduleConfig::WarmupCosine { span, warmup_fraction, hold_fraction } => {
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

fn write_metrics(path: &Path, rows: &[MetricsRow]) -> Result<()> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = METRICS_COLUMNS.iter().map(|c| c.to_string()).collect();
    if let Some(first) = rows.first() {
        header.extend(first.test_metrics.iter().map(|(name, _)| format!("test_{name}")));
    }
    writer.write_record(&header)?;
    for row in rows {
        writer.write_record(row.values())?;
    }
    let bytes = writer.into_inner().context("cannot format metrics")?;
    write_atomic(path, &bytes)
}

/// Trains the model of `config` into `run_dir` and returns the summary.
pub fn train(config: &Config, run_dir: &Path, options: &TrainOptions) -> Result<RunSummary> {
    let started = Instant::now();
    let checkpoints = run_dir.join("checkpoints");
    std::fs::create_dir_all(&checkpoints)
        .with_context(|| format!("cannot create run directory {}", checkpoints.display()))?;
    write_atomic(&run_dir.join("config.toml"), config.to_toml()?.as_bytes())?;

    let mut task: Box<dyn Task> = tasks::build(config)?;
    let shape = task.shape();
    let objective = objective(config);
    let mut init_rng = ChaCha8Rng::seed_from_u64(config.seed);
    init_rng.set_stream(STREAM_INIT);
    let mut train_rng = ChaCha8Rng::seed_from_u64(config.seed);
    train_rng.set_stream(STREAM_TRAIN);

    let mut net: Network<f32> = init::build(&config.model, shape.channels, shape.outputs, &mut init_rng);
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
    let schedule = schedule(config);
    let (decay_min, decay_max) = (config.model.decay_min as f32, config.model.decay_max as f32);

    let bar = if options.progress { ProgressBar::new(train.iterations) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );

    let mut rows: Vec<MetricsRow> = Vec::new();
    let classification = shape.kind == TaskKind::Classification;
    let mut summary = RunSummary {
        name: config.name.clone(),
        run_dir: run_dir.display().to_string(),
        model: format!("{:?}", config.model.kind).to_lowercase(),
        seed: config.seed,
        steps: 0,
        elapsed_s: 0.0,
        selected_on: if classification { "validation_accuracy" } else { "validation_loss" }.to_string(),
        best_validation_step: 0,
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
        best_test_accuracy: None,
        best_test_loss: f64::INFINITY,
        best_test_step: 0,
        tau_at_best_validation: BTreeMap::new(),
        tau_last: BTreeMap::new(),
    };
    let tau_threshold_ms = config.output.tau_threshold * 1000.0;
    let (mut window_loss, mut window_correct, mut window_samples, mut window_rate, mut window_iters) =
        (0.0, 0usize, 0usize, 0.0, 0u64);

    for iteration in 0..train.iterations {
        let samples = task.train_batch(train.batch_size, &mut train_rng);
        let dropout = Dropout::Random { p: config.model.dropout, seed: dropout_seed(config.seed, iteration) };
        let (stats, grad) = net.loss_and_grad(&samples, shape.steps, &objective, dropout, true);
        if !stats.loss.is_finite() {
            bail!("iteration {iteration}: the training loss is {} (try a lower train.lr)", stats.loss);
        }
        let mut grad = grad.context("gradient was requested")?;
        let mut grads: Vec<&mut [f32]> = grad.params_mut();
        if let Some(bad) = grads.iter().position(|g| g.iter().any(|v| !v.is_finite())) {
            bail!("iteration {iteration}: the gradient of `{}` is not finite", net.params()[bad].0.name);
        }
        if train.grad_clip > 0.0 {
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
        let grads: Vec<&[f32]> = grads.into_iter().map(|g| &*g).collect();
        adam.step(&mut net.params_mut(), &grads, &lrs);
        clamp_decays(&mut net, decay_min, decay_max);

        window_loss += stats.loss;
        window_correct += stats.correct;
        window_samples += stats.samples;
        window_rate += stats.mean_rate_hz;
        window_iters += 1;
        let step = iteration + 1;
        bar.inc(1);

        if step % train.eval_every == 0 || step == train.iterations {
            let validation = evaluate(&net, task.as_ref(), task.validation(), &objective);
            let test = evaluate(&net, task.as_ref(), task.test(), &objective);
            let row = MetricsRow {
                step,
                iteration: step,
                train_loss: window_loss / window_iters as f64,
                train_accuracy: classification.then(|| window_correct as f64 / window_samples.max(1) as f64),
                validation_loss: validation.stats.loss,
                validation_accuracy: validation.accuracy,
                test_loss: test.stats.loss,
                test_accuracy: test.accuracy,
                lr: train.lr * factor,
                mean_rate_hz: window_rate / window_iters as f64,
                elapsed_s: started.elapsed().as_secs_f64(),
                test_metrics: test.metrics.clone(),
            };
            (window_loss, window_correct, window_samples, window_rate, window_iters) = (0.0, 0, 0, 0.0, 0);
            let percent = |a: Option<f64>| a.map(|a| format!("{:.1}%", 100.0 * a)).unwrap_or_else(|| "-".into());
            if !options.progress {
                tracing::info!(
                    step,
                    train_loss = row.train_loss,
                    validation_loss = row.validation_loss,
                    test_loss = row.test_loss,
                    validation_accuracy = %percent(row.validation_accuracy),
                    test_accuracy = %percent(row.test_accuracy),
                    rate_hz = row.mean_rate_hz,
                    "evaluated"
                );
            }
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
            let better = match (row.validation_accuracy, summary.best_validation_accuracy) {
                (Some(a), Some(best)) => a > best || (a == best && row.validation_loss < summary.best_validation_loss),
                (Some(_), None) => true,
                (None, _) => row.validation_loss < summary.best_validation_loss,
            };
            let test_metrics: BTreeMap<String, f64> = row.test_metrics.iter().cloned().collect();
            if better {
                summary.best_validation_accuracy = row.validation_accuracy;
                summary.best_validation_loss = row.validation_loss;
                summary.best_validation_step = step;
                summary.test_accuracy_at_best_validation = row.test_accuracy;
                summary.test_loss_at_best_validation = row.test_loss;
                summary.test_metrics_at_best_validation = test_metrics.clone();
                summary.tau_at_best_validation = tau_stats(&net, tau_threshold_ms);
                checkpoint::save(&checkpoints.join("best.safetensors"), &net, config, step, step, &metrics, None)?;
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
            }
            summary.last_test_accuracy = row.test_accuracy;
            summary.last_validation_accuracy = row.validation_accuracy;
            summary.last_train_loss = row.train_loss;
            summary.last_test_loss = row.test_loss;
            summary.last_test_metrics = test_metrics;
            checkpoint::save(&checkpoints.join("last.safetensors"), &net, config, step, step, &metrics, Some(&adam))?;
            rows.push(row);
            write_metrics(&run_dir.join("metrics.csv"), &rows)?;
        }
    }
    bar.finish_and_clear();
    summary.steps = train.iterations;
    summary.tau_last = tau_stats(&net, tau_threshold_ms);
    summary.elapsed_s = started.elapsed().as_secs_f64();
    write_atomic(&run_dir.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    Ok(summary)
}

/// `<dir>/<name>-<UTC timestamp>`, with a numeric suffix if that exists already.
pub fn new_run_dir(config: &Config) -> PathBuf {
    let base = Path::new(&config.output.dir).join(format!("{}-{}", config.name, crate::io::atomic::utc_timestamp()));
    let mut dir = base.clone();
    let mut k = 1;
    while dir.exists() {
        dir = PathBuf::from(format!("{}-{k}", base.display()));
        k += 1;
    }
    dir
}
