//! The trainer, generic over the task: batches from the task's training
//! source, exact gradients from the network, Adam/AdamW steps, decay clamping
//! and masking, periodic evaluation on the held-out validation and test sets,
//! metrics, model selection and checkpoints. [`train`] is the loop; a
//! [`Trainer`] holds a run's state and does one thing per method.
//! A task without a validation set (`validation = "none"`, `validation_size = 0`)
//! selects the last evaluation and writes no `best.safetensors`.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::evaluate::{evaluate, objective};
use super::freeze::FrozenDecays;
use super::interrupt::{self, Interrupted};
use super::metrics::{float_or_nan, MetricsLog, MetricsRow};
use super::optim::{clip_grad_norm, Adam, AdamConfig, OptimizerState};
use super::run::{OpenRun, RunDir, RunLock, Saved};
use super::schedule::Schedule;
use super::summary::RunSummary;
use super::tau_stats::{input_group_tau, tau_stats};
use crate::config::{Config, NonFinite, ScheduleConfig};
use crate::io::atomic::write_atomic;
use crate::checkpoint::{self, Checkpoint, ResumeData, Role};
use crate::logging::sig4;
use crate::model::{init, Dropout, Network, Objective, ParamKind};
use crate::provenance::Provenance;
use crate::tasks::{self, Sample, Task, TaskKind, Training};

/// RNG streams of a run, all from `config.seed`.
const STREAM_INIT: u64 = 10;
const STREAM_TRAIN: u64 = 11;

#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Show the progress bar.
    pub progress: bool,
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
    /// The plan of `config` for a task with `epoch_len` training samples per
    /// epoch (`None`: fresh trials).
    pub fn new(config: &Config, epoch_len: Option<usize>) -> Plan {
        let train = &config.train;
        let steps_per_epoch = epoch_len.map(|n| tasks::steps_per_epoch(n, train.batch_size));
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

/// The network a run of `config` starts from: `init::build` drawing from stream
/// `STREAM_INIT` (10) of a ChaCha8 generator seeded with `config.seed` (`hetsyn plot`
/// rebuilds it to compare learned time constants with the initial ones).
pub fn initial_network(config: &Config, inputs: usize, outputs: usize) -> Network<f32> {
    let mut init_rng = ChaCha8Rng::seed_from_u64(config.seed);
    init_rng.set_stream(STREAM_INIT);
    init::build(&config.model.network_spec(), inputs, outputs, &mut init_rng)
}

/// Clamps every learnable decay to `[lo, hi]` (after each optimizer step).
pub fn clamp_decays(net: &mut Network<f32>, lo: f32, hi: f32) {
    for (_, decays) in net.decays_mut() {
        decays.iter_mut().for_each(|d| *d = d.clamp(lo, hi));
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

/// Sums over the iterations since the last metrics row.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Window {
    /// Sum of the training losses (task loss plus the rate regulariser).
    #[serde(deserialize_with = "float_or_nan")]
    loss: f64,
    /// Sum of their task-loss and regulariser parts (absent in trainer states
    /// of earlier versions: the row then shows NaN, as no part was summed).
    #[serde(default = "nan", deserialize_with = "float_or_nan")]
    task_loss: f64,
    #[serde(default = "nan", deserialize_with = "float_or_nan")]
    regulariser_loss: f64,
    correct: usize,
    samples: usize,
    #[serde(deserialize_with = "float_or_nan")]
    rate: f64,
    iterations: u64,
    skipped: u64,
}

fn nan() -> f64 {
    f64::NAN
}

/// Iterations in the moving average of [`Convergence`].
pub const CONVERGENCE_WINDOW: usize = 10;
/// Training accuracy that [`Convergence`] waits for.
pub const CONVERGENCE_ACCURACY: f64 = 0.95;

/// The training accuracy of the last [`CONVERGENCE_WINDOW`] iterations, as
/// (correct, samples) per iteration: their moving average is
/// `sum(correct) / sum(samples)` (equal batches: the mean of the accuracies).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Convergence {
    recent: std::collections::VecDeque<(usize, usize)>,
}

impl Convergence {
    /// Adds one iteration's batch result; true when the window is full and its
    /// moving average is at least [`CONVERGENCE_ACCURACY`].
    fn record(&mut self, correct: usize, samples: usize) -> bool {
        self.recent.push_back((correct, samples));
        if self.recent.len() > CONVERGENCE_WINDOW {
            self.recent.pop_front();
        }
        let (correct, samples) = self.recent.iter().fold((0, 0), |(c, n), (dc, dn)| (c + dc, n + dn));
        self.recent.len() == CONVERGENCE_WINDOW
            && samples > 0
            && correct as f64 >= CONVERGENCE_ACCURACY * samples as f64
    }
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
    /// Absent in trainer states of earlier versions (then counted afresh).
    #[serde(default)]
    convergence: Convergence,
    summary: RunSummary,
    metrics: MetricsLog,
    /// Seconds spent before this process.
    elapsed_s: f64,
}

impl TrainerState {
    /// The state of a fresh run whose summary starts as `summary`.
    fn fresh(summary: RunSummary) -> TrainerState {
        TrainerState {
            iteration: 0,
            train_rng_word_pos: "0".into(),
            window: Window::default(),
            convergence: Convergence::default(),
            summary,
            metrics: MetricsLog::default(),
            elapsed_s: 0.0,
        }
    }

    /// The network, the optimizer's state and the trainer's state that a
    /// resumable checkpoint holds.
    fn restore(ckpt: Checkpoint) -> Result<(Network<f32>, OptimizerState, TrainerState)> {
        let state = ckpt.trainer_state.as_deref().context("the checkpoint has no trainer state")?;
        let state: TrainerState = serde_json::from_str(state).context("the trainer state is not valid")?;
        state.word_pos()?;
        let optimizer = ckpt.optimizer.context("the checkpoint has no optimizer state")?;
        Ok((ckpt.network, optimizer, state))
    }

    fn word_pos(&self) -> Result<u128> {
        self.train_rng_word_pos.parse().context("bad generator position")
    }

    /// The training-trial generator of a run seeded with `seed`, at this state's position.
    fn train_rng(&self, seed: u64) -> Result<ChaCha8Rng> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(STREAM_TRAIN);
        if self.iteration > 0 {
            rng.set_word_pos(self.word_pos()?);
        }
        Ok(rng)
    }
}

/// A run in progress: its directory (locked), task, network, optimizer and
/// everything the loop accumulates.
pub struct Trainer<'c> {
    config: &'c Config,
    /// The run's directory, locked while the trainer lives.
    run: OpenRun,
    task: Box<dyn Task>,
    net: Network<f32>,
    adam: Adam,
    frozen: FrozenDecays,
    /// Kind of each tensor of `net.params()` (learning rates).
    kinds: Vec<ParamKind>,
    objective: Objective,
    pub plan: Plan,
    schedule: Schedule,
    /// The training generator after the batches of the iterations completed.
    train_rng: ChaCha8Rng,
    /// The fresh trials of the next iteration, drawn while this one computed,
    /// and the generator after them.
    ahead: Option<(Vec<Sample>, ChaCha8Rng)>,
    /// Iterations completed.
    pub iteration: u64,
    window: Window,
    convergence: Convergence,
    log: MetricsLog,
    summary: RunSummary,
    /// The metrics of the last evaluation, as checkpoints log them.
    last_metrics: serde_json::Value,
    /// Learning-rate factor of the last step.
    factor: f64,
    started: Instant,
    elapsed_before: f64,
}

impl<'c> Trainer<'c> {
    /// Sets up the run of `config` in `run`: locks it, starts its log, writes
    /// its config (a fresh run) or restores the state of `resume` (a resumable
    /// checkpoint of this run), and builds the task, network and optimizer.
    pub fn new(config: &'c Config, run: RunDir, resume: Option<Checkpoint>) -> Result<Trainer<'c>> {
        Trainer::start(config, run, None, resume)
    }

    /// [`Trainer::new`] with the run's lock taken already (`lock`, from
    /// [`RunDir::claim`]), or taken here (`None`).
    pub fn start(
        config: &'c Config,
        run: RunDir,
        lock: Option<RunLock>,
        resume: Option<Checkpoint>,
    ) -> Result<Trainer<'c>> {
        let started = Instant::now();
        // the task first: a config whose data is missing leaves no run directory behind
        let mut task: Box<dyn Task> = config.build_task()?;
        let run = run.open(config, lock, resume.is_some())?;
        let shape = task.shape();
        // the frozen decays keep the initial values, also on --resume
        let initial = initial_network(config, shape.channels, shape.outputs);
        let frozen = FrozenDecays::new(config, &initial);
        if config.model.frozen_decay_fraction > 0.0 && frozen.count() == 0 {
            tracing::warn!("model.frozen_decay_fraction has no effect: the model has no learnable decays");
        }
        let kinds: Vec<ParamKind> = initial.params().iter().map(|(info, _)| info.kind).collect();
        let sizes: Vec<usize> = initial.params().iter().map(|(_, data)| data.len()).collect();
        let adam_config = AdamConfig::from(&config.train);
        let (net, adam, state) = match resume {
            None => (initial, Adam::new(adam_config, &sizes), TrainerState::fresh(RunSummary::new(config, run.path()))),
            Some(ckpt) => {
                let at = || format!("cannot resume from {}", run.checkpoint(Saved::Last).display());
                let (net, optimizer, state) = TrainerState::restore(ckpt).with_context(at)?;
                let adam = Adam::from_state(adam_config, optimizer, &sizes).with_context(at)?;
                state.metrics.write(&run.metrics())?;
                tracing::info!(iteration = state.iteration, "resuming");
                (net, adam, state)
            }
        };
        let plan = Plan::new(config, task.training().epoch_len());
        let train_rng = state.train_rng(config.seed)?;
        let mut summary = state.summary;
        summary.provenance = Provenance::current();
        let classification = shape.kind == TaskKind::Classification;
        summary.describe_selection(task.validation().len(), classification, config.output.save_best_on_test);
        Ok(Trainer {
            config,
            run,
            task,
            net,
            adam,
            frozen,
            kinds,
            objective: objective(config),
            schedule: schedule(config, &plan),
            plan,
            train_rng,
            ahead: None,
            iteration: state.iteration,
            window: state.window,
            convergence: state.convergence,
            log: state.metrics,
            summary,
            last_metrics: serde_json::Value::Null,
            factor: 1.0,
            started,
            elapsed_before: state.elapsed_s,
        })
    }

    fn elapsed(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    /// Whether the run is complete.
    pub fn done(&self) -> bool {
        self.iteration >= self.plan.iterations
    }

    /// Whether the iterations done call for an evaluation.
    pub fn evaluation_due(&self) -> bool {
        self.iteration.is_multiple_of(self.plan.eval_every) || self.iteration == self.plan.iterations
    }

    /// Whether the iterations done call for a resumable checkpoint besides the
    /// evaluations' (`train.checkpoint_every`).
    pub fn checkpoint_due(&self) -> bool {
        let every = self.config.train.checkpoint_every;
        self.evaluation_due() || (every > 0 && self.iteration.is_multiple_of(every))
    }

    /// One optimizer step: the batch of this iteration, its exact gradient, the
    /// non-finite policy, clipping, Adam, decay clamping and masking.
    pub fn step(&mut self) -> Result<()> {
        let (config, train) = (self.config, &self.config.train);
        let iteration = self.iteration;
        let steps = self.task.shape().steps;
        let samples = match self.ahead.take() {
            Some((samples, rng)) => {
                self.train_rng = rng;
                samples
            }
            None => self.task.training().batch(iteration, train.batch_size, &mut self.train_rng),
        };
        let dropout = Dropout::Random { p: config.model.dropout, seed: dropout_seed(config.seed, iteration) };
        let (net, objective) = (&self.net, &self.objective);
        let gradient = || net.loss_and_grad(&samples, steps, objective, dropout);
        // fresh trials of the next iteration are drawn meanwhile, from the same stream
        let (stats, mut grad) = match self.task.training() {
            Training::Trials(source) if iteration + 1 < self.plan.iterations => {
                let mut rng = self.train_rng.clone();
                let (result, next) = rayon::join(gradient, || source.trials(train.batch_size, &mut rng));
                self.ahead = Some((next, rng));
                result
            }
            _ => gradient(),
        };
        let mut grads: Vec<&mut [f32]> = grad.params_mut();
        self.frozen.zero_gradients(&mut grads);
        let bad_gradient = grads.iter().position(|g| g.iter().any(|v| !v.is_finite()));
        let problem = if !stats.loss.is_finite() {
            Some(format!("the training loss is {}", stats.loss))
        } else {
            bad_gradient.map(|k| format!("the gradient of `{}` is not finite", self.net.params()[k].0.name))
        };
        let skip = match (&problem, train.on_nonfinite) {
            (None, _) => false,
            (Some(problem), NonFinite::Stop) => {
                let last = self.run.checkpoint(Saved::Last);
                bail!(
                    "iteration {iteration}: {problem}; stopped ({}; try a lower train.lr, train.grad_clip, or train.on_nonfinite = \"skip\")",
                    if last.exists() {
                        format!("the last good checkpoint is {}", last.display())
                    } else {
                        "no checkpoint was written yet".to_string()
                    }
                )
            }
            (Some(problem), NonFinite::Skip) => {
                tracing::warn!(iteration, "{problem}: batch skipped");
                true
            }
        };
        if train.grad_clip > 0.0 && !skip {
            clip_grad_norm(&mut grads, train.grad_clip);
        }
        self.factor = self.schedule.factor(iteration);
        let lrs: Vec<f64> = self
            .kinds
            .iter()
            .map(|k| match k {
                ParamKind::Weight => train.lr * self.factor,
                ParamKind::Decay => train.decay_lr * self.factor,
            })
            .collect();
        if skip {
            self.window.skipped += 1;
        } else {
            let grads: Vec<&[f32]> = grads.into_iter().map(|g| &*g).collect();
            self.adam.step(&mut self.net.params_mut(), &grads, &lrs);
            let (lo, hi) = (config.model.decay_min as f32, config.model.decay_max as f32);
            clamp_decays(&mut self.net, lo, hi);
            self.frozen.restore(&mut self.net.params_mut());
            let window = &mut self.window;
            window.loss += stats.loss;
            window.task_loss += stats.task_loss;
            window.regulariser_loss += stats.regulariser_loss;
            window.correct += stats.correct;
            window.samples += stats.samples;
            window.rate += stats.mean_rate_hz;
            window.iterations += 1;
            let classification = self.task.shape().kind == TaskKind::Classification;
            if classification
                && self.summary.iterations_to_95.is_none()
                && self.convergence.record(stats.correct, stats.samples)
            {
                self.summary.iterations_to_95 = Some(iteration + 1);
            }
        }
        self.iteration += 1;
        Ok(())
    }

    /// Evaluates on the validation and test sets: appends the metrics row,
    /// updates the selection (and its checkpoints) and rewrites metrics.csv.
    pub fn evaluate(&mut self) -> Result<MetricsRow> {
        let (config, step) = (self.config, self.iteration);
        let task = self.task.as_ref();
        let validating = !task.validation().is_empty();
        let classification = task.shape().kind == TaskKind::Classification;
        let validation = validating.then(|| evaluate(&self.net, task, task.validation(), &self.objective));
        let test = evaluate(&self.net, task, task.test(), &self.objective);
        let window = std::mem::take(&mut self.window);
        let row = MetricsRow {
            step,
            iteration: step,
            epoch: self.plan.epochs_done(step),
            train_loss: window.loss / window.iterations.max(1) as f64,
            train_task_loss: window.task_loss / window.iterations.max(1) as f64,
            train_regulariser_loss: window.regulariser_loss / window.iterations.max(1) as f64,
            train_accuracy: classification.then(|| window.correct as f64 / window.samples.max(1) as f64),
            validation_loss: validation.as_ref().map(|v| v.stats.loss),
            validation_accuracy: validation.as_ref().and_then(|v| v.accuracy),
            test_loss: test.stats.loss,
            test_accuracy: test.accuracy,
            lr: config.train.lr * self.factor,
            mean_rate_hz: window.rate / window.iterations.max(1) as f64,
            skipped_batches: window.skipped,
            elapsed_s: self.elapsed(),
            test_metrics: test.metrics,
        };
        let metrics = row.to_json()?;
        let improved = self.summary.figures.record(&row, validating);
        let threshold_ms = config.output.tau_threshold * 1000.0;
        let epoch = self.plan.epoch(step);
        if improved.on_validation {
            self.summary.tau_at_best_validation = tau_stats(&self.net, threshold_ms);
            self.summary.input_tau_at_best_validation = input_group_tau(&self.net, &task.input_groups(), threshold_ms);
            if validating {
                let role = Role::Selected(&self.summary.selected_on);
                checkpoint::save(&self.run.checkpoint(Saved::Best), &self.net, config, step, epoch, &metrics, role)?;
            }
        }
        if improved.on_test && config.output.save_best_on_test {
            let role = Role::Selected(&self.summary.best_test_selected_on);
            checkpoint::save(&self.run.checkpoint(Saved::BestOnTest), &self.net, config, step, epoch, &metrics, role)?;
        }
        self.log.push(&row);
        self.log.write(&self.run.metrics())?;
        self.last_metrics = metrics;
        Ok(row)
    }

    /// Writes the resumable `last.safetensors`: the model, Adam's state and
    /// the trainer's ([`TrainerState`]).
    pub fn checkpoint(&self) -> Result<()> {
        let state = TrainerState {
            iteration: self.iteration,
            train_rng_word_pos: self.train_rng.get_word_pos().to_string(),
            window: self.window.clone(),
            convergence: self.convergence.clone(),
            summary: self.summary.clone(),
            metrics: self.log.clone(),
            elapsed_s: self.elapsed(),
        };
        let state = serde_json::to_string(&state)?;
        let resume = ResumeData { optimizer: self.adam.state(), trainer_state: &state };
        let (step, epoch) = (self.iteration, self.plan.epoch(self.iteration));
        let path = self.run.checkpoint(Saved::Last);
        checkpoint::save(&path, &self.net, self.config, step, epoch, &self.last_metrics, Role::Resumable(resume))
    }

    /// Ends the run: the last model's time constants, `summary.json`.
    pub fn finish(mut self) -> Result<RunSummary> {
        let threshold_ms = self.config.output.tau_threshold * 1000.0;
        let summary = &mut self.summary;
        summary.steps = self.plan.iterations;
        summary.epochs = self.plan.epochs_done(self.plan.iterations);
        summary.tau_last = tau_stats(&self.net, threshold_ms);
        summary.input_tau_last = input_group_tau(&self.net, &self.task.input_groups(), threshold_ms);
        summary.elapsed_s = self.elapsed_before + self.started.elapsed().as_secs_f64();
        write_atomic(&self.run.summary(), serde_json::to_string_pretty(&self.summary)?.as_bytes())?;
        Ok(self.summary)
    }
}

/// Trains into `out`, or into a new default run directory
/// (`<output.dir>/<name>-<UTC timestamp>`, see [`RunDir::reserve`]) that is
/// removed again if the run fails before writing anything into it.
pub fn train_into(
    config: &Config,
    out: Option<&Path>,
    options: &TrainOptions,
    resume: Option<Checkpoint>,
    lock: Option<RunLock>,
) -> Result<(RunDir, RunSummary)> {
    let (run, reserved) = match out {
        Some(dir) => (RunDir::at(dir), false),
        None => (RunDir::reserve(Path::new(&config.output.dir), &config.name)?, true),
    };
    tracing::info!(run_dir = %run.path().display(), model = ?config.model.kind, "training");
    match train(config, run.path(), options, resume, lock) {
        Ok(summary) => Ok((run, summary)),
        Err(e) => {
            if reserved {
                // a run that failed before writing anything leaves no empty directory behind
                let _ = std::fs::remove_dir(run.path());
            }
            Err(e)
        }
    }
}

/// Trains the model of `config` into `run_dir` and returns the summary.
///
/// With `resume`, a checkpoint written by an earlier run into the same
/// directory, training continues from it and produces the same metrics rows
/// (but for `elapsed_s`) and parameters as an uninterrupted run. `lock` is the
/// run's lock when the caller holds it already ([`RunDir::claim`]). On SIGINT or
/// SIGTERM ([`interrupt`]) it stops after the current iteration with a
/// resumable checkpoint and returns [`Interrupted`].
pub fn train(
    config: &Config,
    run_dir: &Path,
    options: &TrainOptions,
    resume: Option<Checkpoint>,
    lock: Option<RunLock>,
) -> Result<RunSummary> {
    let mut trainer = Trainer::start(config, RunDir::at(run_dir), lock, resume)?;
    let bar = progress_bar(options, trainer.plan.iterations, trainer.iteration);
    while !trainer.done() {
        trainer.step()?;
        bar.inc(1);
        if trainer.evaluation_due() {
            let row = trainer.evaluate()?;
            bar.suspend(|| log_evaluation(&row));
            bar.set_message(progress_message(&row));
        }
        let signal = interrupt::requested();
        if trainer.checkpoint_due() || signal.is_some() {
            trainer.checkpoint()?;
        }
        if let Some(signal) = signal {
            bar.finish_and_clear();
            let message = format!(
                "interrupted after iteration {}; a resumable checkpoint is in {}: continue with `hetsyn train --resume {}`",
                trainer.iteration,
                trainer.run.checkpoint(Saved::Last).display(),
                run_dir.display()
            );
            return Err(Interrupted { signal, message }.into());
        }
    }
    bar.finish_and_clear();
    trainer.finish()
}

fn progress_bar(options: &TrainOptions, iterations: u64, position: u64) -> ProgressBar {
    let bar = if options.progress { ProgressBar::new(iterations) } else { ProgressBar::hidden() };
    bar.set_position(position);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

fn percent(a: Option<f64>) -> String {
    a.map(|a| format!("{:.1}%", 100.0 * a)).unwrap_or_else(|| "-".into())
}

/// One plain line per evaluation (above the bar on a terminal), in train.log too.
fn log_evaluation(row: &MetricsRow) {
    let sig = |v: Option<f64>| v.map(sig4).unwrap_or_else(|| "-".into());
    tracing::info!(
        step = row.step,
        train_loss = %sig4(row.train_loss),
        validation_loss = %sig(row.validation_loss),
        test_loss = %sig4(row.test_loss),
        validation_accuracy = %percent(row.validation_accuracy),
        test_accuracy = %percent(row.test_accuracy),
        rate_hz = %sig4(row.mean_rate_hz),
        "evaluated"
    )
}

fn progress_message(row: &MetricsRow) -> String {
    format!(
        "loss {:.4} val {} test {} {:.1} Hz",
        row.train_loss,
        percent(row.validation_accuracy),
        percent(row.test_accuracy),
        row.mean_rate_hz
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small recurrent DMS run: 12 iterations, evaluated every 4.
    fn config(dir: &Path, kind: &str) -> Config {
        let text = format!(
            r#"
name = "unit"
seed = 3
[model]
kind = "{kind}"
tau_init = {{ dist = "uniform", low = 0.02, high = 0.1 }}
layers = [{{ size = 6, recurrent = true }}]
[model.readout]
loss = "last"
[task]
kind = "dms"
channels_per_group = 2
validation_trials = 16
test_trials = 16
[train]
iterations = 12
eval_every = 4
batch_size = 4
rate_reg = 0.01
grad_clip = 1.0
[output]
dir = {:?}
"#,
            dir.display().to_string()
        );
        Config::from_toml(&text, &[]).unwrap()
    }

    fn params(trainer: &Trainer) -> Vec<u32> {
        trainer.net.params().iter().flat_map(|(_, d)| d.iter().map(|v| v.to_bits())).collect()
    }

    #[test]
    fn steps_evaluations_and_checkpoints_follow_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), "hetsynlif");
        let run = RunDir::at(dir.path().join("run"));
        let mut trainer = Trainer::new(&config, run.clone(), None).unwrap();
        assert_eq!((trainer.plan.iterations, trainer.plan.eval_every, trainer.iteration), (12, 4, 0));
        let start = params(&trainer);
        let mut rows = Vec::new();
        while !trainer.done() {
            trainer.step().unwrap();
            if trainer.evaluation_due() {
                rows.push(trainer.evaluate().unwrap());
                trainer.checkpoint().unwrap();
            }
        }
        assert_ne!(params(&trainer), start, "the steps changed the parameters");
        assert_eq!(rows.iter().map(|r| r.step).collect::<Vec<_>>(), [4, 8, 12]);
        assert!(rows.iter().all(|r| r.train_loss.is_finite() && r.validation_accuracy.is_some()));
        // the logged loss is its task and regulariser parts (rate_reg is on)
        for r in &rows {
            assert!(r.train_regulariser_loss > 0.0, "{r:?}");
            let sum = r.train_task_loss + r.train_regulariser_loss;
            assert!((sum - r.train_loss).abs() <= 1e-12 * r.train_loss.abs().max(1.0), "{r:?}");
        }
        assert_eq!(crate::train::metrics::read_metrics(&run.metrics()).unwrap().len(), 3);
        assert!(run.checkpoint(Saved::Best).is_file() && run.checkpoint(Saved::Last).is_file());
        let summary = trainer.finish().unwrap();
        assert_eq!(summary.steps, 12);
        assert!(run.summary().is_file() && run.config().is_file());
        assert!(!run.path().join(".lock").exists(), "the lock goes with the trainer");
    }

    #[test]
    fn a_trainer_resumed_from_its_checkpoint_continues_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        for kind in ["hetsynlif", "homneualif"] {
            let config = config(dir.path(), kind);
            let straight = RunDir::at(dir.path().join(format!("{kind}-straight")));
            let mut a = Trainer::new(&config, straight, None).unwrap();
            while !a.done() {
                a.step().unwrap();
                if a.evaluation_due() {
                    a.evaluate().unwrap();
                }
            }
            let split = RunDir::at(dir.path().join(format!("{kind}-split")));
            let mut b = Trainer::new(&config, split.clone(), None).unwrap();
            for _ in 0..6 {
                b.step().unwrap();
                if b.evaluation_due() {
                    b.evaluate().unwrap();
                }
            }
            b.checkpoint().unwrap();
            drop(b);
            let ckpt = checkpoint::load(&split.checkpoint(Saved::Last)).unwrap();
            let mut c = Trainer::new(&config, split.clone(), Some(ckpt)).unwrap();
            assert_eq!(c.iteration, 6);
            while !c.done() {
                c.step().unwrap();
                if c.evaluation_due() {
                    c.evaluate().unwrap();
                }
            }
            assert_eq!(params(&a), params(&c), "{kind}: parameters after the resumed run");
            let figures = |t: Trainer| serde_json::to_string(&t.summary.figures).unwrap();
            assert_eq!(figures(a), figures(c), "{kind}: selection");
        }
    }

    /// The moving average spans exactly the last 10 iterations and must reach
    /// 0.95 with a full window.
    #[test]
    fn convergence_waits_for_a_full_window_at_95_percent() {
        let mut c = Convergence::default();
        // nine perfect batches: the window is not full yet
        assert!((0..9).all(|_| !c.record(32, 32)));
        // the tenth brings 9 * 32 + 16 = 304 of 320 = 0.95: reached
        assert!(c.record(16, 32));
        let mut c = Convergence::default();
        assert!(!(0..10).any(|_| c.record(30, 32)), "0.9375 < 0.95");
        // one bad batch leaves the window after 10 more iterations
        let mut c = Convergence::default();
        assert!(!c.record(0, 32));
        let reached: Vec<bool> = (0..10).map(|_| c.record(32, 32)).collect();
        assert_eq!(reached.iter().position(|r| *r), Some(9), "{reached:?}");
    }

    /// iterations_to_95 is the iteration count, the same whether or not the
    /// run was resumed in between (the window travels in the trainer state).
    #[test]
    fn iterations_to_95_survive_a_resume() {
        let dir = tempfile::tempdir().unwrap();
        // the DMS recipe (configs/dms.toml) with 5 hidden neurons, 150 iterations
        let recipe = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/dms.toml")).unwrap();
        let overrides = [
            "model.layers.0.size=5".to_string(),
            "train.iterations=150".into(),
            "train.eval_every=50".into(),
            "task.validation_trials=32".into(),
            "task.test_trials=32".into(),
            format!("output.dir={:?}", dir.path().display().to_string()),
        ];
        let config = Config::from_toml(&recipe, &overrides).unwrap();
        let run_through = |name: &str, split: Option<u64>| -> Option<u64> {
            let run = RunDir::at(dir.path().join(name));
            let mut t = Trainer::new(&config, run.clone(), None).unwrap();
            while !t.done() {
                t.step().unwrap();
                if t.evaluation_due() {
                    t.evaluate().unwrap();
                }
                if Some(t.iteration) == split {
                    t.checkpoint().unwrap();
                    drop(t);
                    let ckpt = checkpoint::load(&run.checkpoint(Saved::Last)).unwrap();
                    t = Trainer::new(&config, run.clone(), Some(ckpt)).unwrap();
                }
            }
            t.finish().unwrap().iterations_to_95
        };
        let straight = run_through("straight", None);
        let reached = straight.expect("this small DMS run reaches 95 % training accuracy in 150 iterations");
        assert!((10..=150).contains(&reached), "{reached}");
        assert_eq!(run_through("split", Some(reached - 3)), straight);
    }

    #[test]
    fn a_fresh_run_refuses_a_directory_that_holds_one() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), "homneulif");
        let run = RunDir::at(dir.path().join("run"));
        let mut trainer = Trainer::new(&config, run.clone(), None).unwrap();
        trainer.step().unwrap();
        trainer.checkpoint().unwrap();
        // a second process while the first holds the lock
        let e = format!("{:#}", Trainer::new(&config, run.clone(), None).err().unwrap());
        assert!(e.contains("in use by process"), "{e}");
        drop(trainer);
        let e = format!("{:#}", Trainer::new(&config, run, None).err().unwrap());
        assert!(e.contains("already holds a run") && e.contains("--resume"), "{e}");
    }

    #[test]
    fn plans_in_epochs_and_iterations() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path(), "hetsynlif");
        assert_eq!(Plan::new(&config, None), Plan { iterations: 12, eval_every: 4, steps_per_epoch: None });
        config.train.epochs = 3;
        config.train.eval_every_epochs = 2;
        config.train.batch_size = 8;
        let plan = Plan::new(&config, Some(20));
        assert_eq!(plan, Plan { iterations: 9, eval_every: 6, steps_per_epoch: Some(3) });
        assert_eq!((plan.epoch(7), plan.epochs_done(6)), (2, Some(2.0)));
    }
}
