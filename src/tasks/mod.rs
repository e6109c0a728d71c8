//! Tasks: each task in one file behind the [`Task`] trait. A task makes input
//! spike trains (or analog inputs) and targets; the trainer is generic over it.

pub mod dms;
pub mod images;
pub mod pattern;

use std::ops::Range;

use rand_chacha::ChaCha8Rng;

/// What the readout must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// One label per sample; accuracy is reported.
    Classification,
    /// A target time series per readout; mean squared error is reported.
    Regression,
}

/// The target of one sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Class index in `0..outputs`.
    Class(usize),
    /// Target values, row-major `[steps, outputs]`.
    Series(Vec<f32>),
}

/// One input sample: `input` is row-major `[steps, channels]` (time-major), spikes
/// as 0/1 or analog values.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub input: Vec<f32>,
    pub target: Target,
}

/// The fixed shape of a task's samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskShape {
    /// Input channels per step.
    pub channels: usize,
    /// Readout neurons (classes, or target series).
    pub outputs: usize,
    /// Time steps per sample.
    pub steps: usize,
    pub kind: TaskKind,
}

/// A task: a source of training samples and fixed held-out validation and test sets.
pub trait Task: Send + Sync {
    fn shape(&self) -> TaskShape;
    /// The `n` training samples of optimizer step `iteration` (0-based). Trial
    /// tasks draw fresh trials with `rng` (the training stream of the run);
    /// dataset tasks take the next `n` samples of seeded per-epoch orders, a
    /// function of `iteration` alone, so a resumed run sees the same batches.
    fn train_batch(&mut self, iteration: u64, n: usize, rng: &mut ChaCha8Rng) -> Vec<Sample>;
    /// Held-out samples for model selection; never used for training.
    fn validation(&self) -> &[Sample];
    /// Held-out samples for the reported test accuracy; never used for training
    /// or model selection.
    fn test(&self) -> &[Sample];
    /// Task-specific figures of one readout trace `[steps, outputs]`, averaged
    /// over held-out samples by the trainer (named columns of metrics.csv).
    fn output_metrics(&self, _output: &[f32]) -> Vec<(String, f64)> {
        Vec::new()
    }
    /// Named groups of input channels (e.g. DMS: left cue, right cue, noise)
    /// for per-group statistics of learned time constants; none by default.
    fn input_groups(&self) -> Vec<(String, Range<usize>)> {
        Vec::new()
    }
}

/// The task a config describes, with its fixed validation and test sets drawn
/// from the run's seed.
pub fn build(config: &crate::config::Config) -> anyhow::Result<Box<dyn Task>> {
    match &config.task {
        crate::config::TaskConfig::Dms(dms) => Ok(Box::new(dms::Dms::new(dms.clone(), config.model.dt, config.seed)?)),
        crate::config::TaskConfig::Images(i) => Ok(Box::new(images::Images::new(i.clone(), config.seed)?)),
        crate::config::TaskConfig::Pattern(p) => {
            Ok(Box::new(pattern::Pattern::new(p.clone(), config.model.dt, config.seed)?))
        }
    }
}
