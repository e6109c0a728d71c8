//! Tasks: each task in one file behind the [`Task`] trait. A task makes input
//! spike trains (or analog inputs) and targets; the trainer is generic over it.

pub mod dms;
pub mod images;
pub mod pattern;
pub mod speech;

use std::ops::Range;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use serde::{Deserialize, Serialize};

use crate::data::BinnedSample;
use crate::model::SampleSource;
use crate::model::LayerInput;
use crate::model::LossKind;
use dms::DmsConfig;
use images::ImagesConfig;
use pattern::PatternConfig;
use speech::{Corpus, SpeechConfig};

/// What the readout must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// One label per sample; accuracy is reported.
    Classification,
    /// A target time series per readout; mean squared error is reported.
    Regression,
}

pub use crate::model::Target;

/// The input of one sample over all its steps.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Row-major `[steps, channels]` (time-major): spikes as 0/1, or analog values.
    Dense(Vec<f32>),
    /// Spike events of a binned data set (binary, or spike counts).
    Events(BinnedSample),
}

impl Input {
    /// The input as the network reads it.
    pub fn layer_input(&self) -> LayerInput<'_, f32> {
        match self {
            Input::Dense(x) => LayerInput::Dense(x),
            Input::Events(e) => match &e.counts {
                None => LayerInput::Spikes { offsets: &e.offsets, active: &e.active },
                Some(counts) => LayerInput::Counts { offsets: &e.offsets, active: &e.active, counts },
            },
        }
    }

    /// The dense values, `[steps, channels]` (events expanded: a bin holds 1 or its count).
    pub fn to_dense(&self, channels: usize) -> Vec<f32> {
        match self {
            Input::Dense(x) => x.clone(),
            Input::Events(e) => {
                let mut dense = vec![0.0; e.steps() * channels];
                for t in 0..e.steps() {
                    let counts = e.counts_at(t);
                    for (k, &c) in e.active_at(t).iter().enumerate() {
                        dense[t * channels + c as usize] = counts.map_or(1.0, |n| f32::from(n[k]));
                    }
                }
                dense
            }
        }
    }

    /// The dense values, for inputs made dense (`None` for events).
    pub fn dense(&self) -> Option<&[f32]> {
        match self {
            Input::Dense(x) => Some(x),
            Input::Events(_) => None,
        }
    }
}

/// One input sample and its target.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub input: Input,
    pub target: Target,
}

impl SampleSource<f32> for Sample {
    fn input(&self) -> LayerInput<'_, f32> {
        self.input.layer_input()
    }
    fn target(&self) -> &Target {
        &self.target
    }
}

/// A perturbation of the test inputs (the paper's robustness evaluations).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Perturbation {
    /// Each input spike removed with this probability.
    Delete(f64),
    /// Each empty input bin set to one spike with this probability.
    Add(f64),
    /// Spike times multiplied by this factor before binning (the number of steps scales with it).
    TimeWarp(f64),
}

impl std::fmt::Display for Perturbation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Perturbation::Delete(p) => write!(f, "delete_prob={p}"),
            Perturbation::Add(p) => write!(f, "add_prob={p}"),
            Perturbation::TimeWarp(a) => write!(f, "time_warp={a}"),
        }
    }
}

/// How a task trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Fresh trials every iteration; runs are `train.iterations` long.
    Trials,
    /// Epochs over a fixed training set; runs may be given in `train.epochs`.
    Epochs,
}

/// Where a task's training samples come from, one of two explicit sources.
pub enum Training<'a> {
    /// Fresh trials each iteration, drawn with the run's training generator.
    Trials(&'a dyn TrialSource),
    /// Epochs over a fixed training set in seeded orders ([`Epochs`]): the
    /// batch of an optimizer step is a function of the step alone, so a
    /// resumed run sees the same batches.
    Epochs(&'a mut dyn EpochSource),
}

/// A source of fresh training trials.
pub trait TrialSource: Sync {
    /// `n` new trials drawn with `rng` (the training stream of the run).
    fn trials(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<Sample>;
}

/// A fixed training set visited in epochs.
pub trait EpochSource {
    /// Training samples per epoch.
    fn len(&self) -> usize;
    /// Whether there is nothing to train on.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The `n` samples of optimizer step `iteration` (see [`Epochs::batch`]).
    fn batch(&mut self, iteration: u64, n: usize) -> Vec<Sample>;
}

impl Training<'_> {
    /// The samples of optimizer step `iteration` (0-based).
    pub fn batch(&mut self, iteration: u64, n: usize, rng: &mut ChaCha8Rng) -> Vec<Sample> {
        match self {
            Training::Trials(source) => source.trials(n, rng),
            Training::Epochs(source) => source.batch(iteration, n),
        }
    }

    /// Training samples per epoch (`None` for fresh trials).
    pub fn epoch_len(&self) -> Option<usize> {
        match self {
            Training::Trials(_) => None,
            Training::Epochs(source) => Some(source.len()),
        }
    }
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
    /// Where the training samples come from.
    fn training(&mut self) -> Training<'_>;
    /// Data time of one step in seconds, when it is not `model.dt` (binned
    /// recordings: the bin length).
    fn step_seconds(&self) -> Option<f64> {
        None
    }
    /// Held-out samples for model selection; never used for training. Empty
    /// when the task has no validation set (the trainer then selects the last
    /// evaluation).
    fn validation(&self) -> &[Sample];
    /// Held-out samples for the reported test accuracy; never used for training
    /// or model selection.
    fn test(&self) -> &[Sample];
    /// Task-specific figures of one readout trace `[steps, outputs]`, averaged
    /// over held-out samples by the trainer (named columns of metrics.csv).
    fn output_metrics(&self, _output: &[f32]) -> Vec<(String, f64)> {
        Vec::new()
    }
    /// The test samples under a perturbation drawn from `seed`, and their
    /// number of steps. Only tasks on recorded spike data support this.
    fn perturbed_test(&self, perturbation: &Perturbation, _seed: u64) -> anyhow::Result<(Vec<Sample>, usize)> {
        anyhow::bail!("{perturbation}: this task does not support perturbed test inputs (the shd and ssc tasks do)")
    }
    /// Named groups of input channels (e.g. DMS: left cue, right cue, noise)
    /// for per-group statistics of learned time constants; none by default.
    fn input_groups(&self) -> Vec<(String, Range<usize>)> {
        Vec::new()
    }
    /// Disjoint named groups of input channels, in channel order, that plots
    /// label (DMS: left cue, right cue, noise); none by default.
    fn channel_groups(&self) -> Vec<(String, Range<usize>)> {
        Vec::new()
    }
    /// Names of the classes by index (DMS: match, mismatch); empty (the
    /// default) when a class has no name but its index.
    fn class_names(&self) -> Vec<String> {
        Vec::new()
    }
    /// Named spans of a trial's steps that plots mark (DMS: the two cues;
    /// pattern generation: the presentations of the frozen segment); none by default.
    fn marked_windows(&self) -> Vec<(String, Range<usize>)> {
        Vec::new()
    }
}

/// Optimizer steps of one epoch over `count` training samples in batches of
/// `n`: `ceil(count / n)` (the last batch of an epoch may be smaller).
pub fn steps_per_epoch(count: usize, n: usize) -> u64 {
    count.div_ceil(n.max(1)).max(1) as u64
}

/// Epochs over a training set (`samples`, indices into a data set): each
/// epoch visits every sample once, in a new order drawn from the run seed (ChaCha8 stream
/// `EPOCH_STREAM + epoch`), cut into batches of `n` with a smaller last batch
/// (PyTorch's `DataLoader(shuffle=True, drop_last=False)`). The batch of an
/// optimizer step is a function of the step alone, so resumed runs see the
/// same batches.
#[derive(Debug, Clone)]
pub struct Epochs {
    seed: u64,
    samples: Vec<usize>,
    /// The order of the last epoch used (derived from the seed; not state).
    cache: Option<(u64, Vec<usize>)>,
}

/// Epoch `e` is ordered with stream `EPOCH_STREAM + e`.
const EPOCH_STREAM: u64 = 1 << 32;

impl Epochs {
    pub fn new(seed: u64, samples: Vec<usize>) -> Self {
        Epochs { seed, samples, cache: None }
    }

    /// Training samples per epoch.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no training samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples of the batch of optimizer step `iteration`: positions
    /// `p n .. min((p + 1) n, len)` of epoch `iteration / s`'s order,
    /// `p = iteration mod s`, `s` = [`steps_per_epoch`].
    pub fn batch(&mut self, iteration: u64, n: usize) -> Vec<usize> {
        let count = self.samples.len();
        let per_epoch = steps_per_epoch(count, n);
        let (epoch, p) = (iteration / per_epoch, (iteration % per_epoch) as usize);
        if self.cache.as_ref().map(|(e, _)| *e) != Some(epoch) {
            let mut order: Vec<usize> = (0..count).collect();
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(EPOCH_STREAM + epoch);
            order.shuffle(&mut rng);
            self.cache = Some((epoch, order));
        }
        let order = self.cache.as_ref().map(|(_, o)| &o[..]).unwrap_or(&[]);
        order[(p * n).min(count)..((p + 1) * n).min(count)].iter().map(|&k| self.samples[k]).collect()
    }
}

/// The task and its settings (`[task]`, chosen by `kind`). A new task is a
/// file in this directory, a variant here with its arms in the three methods
/// below, and a config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskConfig {
    /// Delayed match-to-sample (paper §4.2).
    Dms(DmsConfig),
    /// Pattern generation (paper §4.1).
    Pattern(PatternConfig),
    /// Image classification from MNIST-family IDX files (paper §4.4).
    Images(ImagesConfig),
    /// Spiking Heidelberg Digits from the official HDF5 files (paper §4.3).
    Shd(SpeechConfig),
    /// Spiking Speech Commands from the official HDF5 files.
    Ssc(SpeechConfig),
}

impl TaskConfig {
    /// How the task trains.
    pub fn sampling(&self) -> Sampling {
        match self {
            TaskConfig::Dms(_) | TaskConfig::Pattern(_) => Sampling::Trials,
            TaskConfig::Images(_) | TaskConfig::Shd(_) | TaskConfig::Ssc(_) => Sampling::Epochs,
        }
    }

    /// Ranges and consistency with the model's step `dt` and readout `loss`;
    /// messages name the key and the value.
    pub fn validate(&self, dt: f64, loss: LossKind) -> anyhow::Result<()> {
        let classification = |what: &str, instead: &str| -> anyhow::Result<()> {
            if loss == LossKind::Mse {
                anyhow::bail!("model.readout.loss = \"mse\": {what} is a classification; use {instead}");
            }
            Ok(())
        };
        match self {
            TaskConfig::Dms(d) => {
                d.validate(dt)?;
                if d.validation_trials == 0 {
                    anyhow::bail!("task.validation_trials = 0: the best checkpoint is chosen on validation trials; give at least 1");
                }
                classification("the dms task", "\"last\" or \"softmax_sum\"")
            }
            TaskConfig::Images(_) => classification("the images task", "\"last\" or \"softmax_sum\""),
            TaskConfig::Shd(s) | TaskConfig::Ssc(s) => {
                s.validate(self.corpus().unwrap_or(Corpus::Shd))?;
                classification("speech recognition", "\"softmax_sum\" or \"last\"")
            }
            TaskConfig::Pattern(p) => {
                p.validate(dt)?;
                if loss != LossKind::Mse {
                    anyhow::bail!("model.readout.loss = {loss:?}: the pattern task is a regression; use \"mse\"");
                }
                Ok(())
            }
        }
    }

    /// The task, with its fixed validation and test sets drawn from `seed`;
    /// `dt` is the model's step (trial tasks are made at that resolution).
    pub fn build(&self, dt: f64, seed: u64) -> anyhow::Result<Box<dyn Task>> {
        Ok(match self {
            TaskConfig::Dms(d) => Box::new(dms::Dms::new(d.clone(), dt, seed)?),
            TaskConfig::Pattern(p) => Box::new(pattern::Pattern::new(p.clone(), dt, seed)?),
            TaskConfig::Images(i) => Box::new(images::Images::new(i.clone(), seed)?),
            TaskConfig::Shd(s) | TaskConfig::Ssc(s) => {
                Box::new(speech::Speech::new(self.corpus().unwrap_or(Corpus::Shd), s.clone(), seed)?)
            }
        })
    }

    /// The speech corpus (`shd`, `ssc`).
    pub fn corpus(&self) -> Option<Corpus> {
        match self {
            TaskConfig::Shd(_) => Some(Corpus::Shd),
            TaskConfig::Ssc(_) => Some(Corpus::Ssc),
            _ => None,
        }
    }

    /// Sets the rate of the task's background noise channels, Hz.
    pub fn set_noise_rate(&mut self, hz: f64) -> anyhow::Result<()> {
        match self {
            TaskConfig::Dms(d) => d.noise_rate = hz,
            TaskConfig::Pattern(p) => p.noise_rate = hz,
            TaskConfig::Images(_) | TaskConfig::Shd(_) | TaskConfig::Ssc(_) => {
                anyhow::bail!("this task has no background noise channels")
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_visit_every_sample_once_with_a_short_last_batch() {
        assert_eq!(steps_per_epoch(10, 4), 3);
        assert_eq!(steps_per_epoch(8, 4), 2);
        assert_eq!(steps_per_epoch(3, 32), 1);
        let mut epochs = Epochs::new(5, (100..110).collect());
        let batches: Vec<Vec<usize>> = (0..6).map(|i| epochs.batch(i, 4)).collect();
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2, 4, 4, 2]);
        for epoch in batches.chunks(3) {
            let mut seen: Vec<usize> = epoch.concat();
            seen.sort_unstable();
            assert_eq!(seen, (100..110).collect::<Vec<_>>());
        }
        assert_ne!(batches[..3].concat(), batches[3..].concat(), "each epoch has its own order");
        // a function of the step alone
        assert_eq!(Epochs::new(5, (100..110).collect()).batch(4, 4), batches[4]);
        assert_ne!(Epochs::new(6, (100..110).collect()).batch(0, 4), batches[0]);
    }
}
