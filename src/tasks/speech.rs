//! Speech recognition from the official HDF5 files of the Spiking Heidelberg
//! Digits (SHD, 20 classes: `shd_train.h5`, `shd_test.h5`) and the Spiking
//! Speech Commands (SSC, 35 classes: `ssc_train.h5`, `ssc_valid.h5`,
//! `ssc_test.h5`), binned as the HetSyn authors do (model.md §4; the binned
//! splits are cached, see [`crate::data::load_binned`]). Samples stay spike
//! events, never dense `[steps, 700]` arrays.
//!
//! SHD has no validation split: `validation = "speaker"` holds out the
//! training samples of the speakers listed in `validation_speakers`,
//! `"fraction"` a seeded `validation_fraction` of them; SSC uses its
//! own valid file (`"file"`). `"none"` (the HetSyn authors' protocol) holds
//! out nothing and has no validation set. Training visits the rest in epochs ([`Epochs`]).
//!
//! The robustness evaluations of the paper perturb the test set
//! ([`Perturbation`]): spikes deleted, spikes added to empty bins, or spike
//! times scaled before binning (time warp, which also scales the number of steps).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{EpochSource, Epochs, Input, Perturbation, Sample, Target, Task, TaskKind, TaskShape, Training};
use crate::data::{bin_sample, load_binned, read_spike_file, BinnedDataset, BinnedSample, Binning, SpikeDataset};

/// ChaCha8 stream (seeded with the run seed) of the `fraction` validation split.
const SPLIT_STREAM: u64 = 9;

/// Which of the two data sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corpus {
    Shd,
    Ssc,
}

impl Corpus {
    fn prefix(self) -> &'static str {
        match self {
            Corpus::Shd => "shd",
            Corpus::Ssc => "ssc",
        }
    }
}

/// Where the validation samples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validation {
    /// The training samples of `validation_speakers`.
    Speaker,
    /// A seeded `validation_fraction` of the training samples.
    Fraction,
    /// The valid file (SSC's `ssc_valid.h5`).
    File,
    /// No validation set: every training sample is trained on (the authors' protocol).
    None,
}

/// Settings of the SHD and SSC tasks (the `[task]` config section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpeechConfig {
    /// Directory of the HDF5 files.
    pub data_dir: String,
    /// File names inside `data_dir`; empty = the official names
    /// (`shd_train.h5`, `ssc_valid.h5`, ...).
    pub train_file: String,
    pub valid_file: String,
    pub test_file: String,
    /// Directory of the binned-sample cache.
    pub cache_dir: String,
    /// `speaker`, `fraction`, `file` or `none`; default `fraction` for SHD, `file` for SSC.
    pub validation: Option<Validation>,
    /// Speakers held out with `validation = "speaker"`.
    pub validation_speakers: Vec<u16>,
    /// Share of the training samples held out with `validation = "fraction"`.
    pub validation_fraction: f64,
    /// Use only the first this many samples of the train file (0 = all).
    pub train_limit: usize,
    /// Use only the first this many test samples (0 = all).
    pub test_limit: usize,
    /// Preprocessing; the defaults are the authors' (4 ms bins, 250 steps, binary, unit u -> channel 700 - u).
    pub binning: Binning,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        SpeechConfig {
            data_dir: "data".into(),
            train_file: String::new(),
            valid_file: String::new(),
            test_file: String::new(),
            cache_dir: "data/cache".into(),
            validation: None,
            validation_speakers: Vec::new(),
            validation_fraction: 0.1,
            train_limit: 0,
            test_limit: 0,
            binning: Binning::default(),
        }
    }
}

impl SpeechConfig {
    /// The validation rule, with the corpus default filled in.
    pub fn validation(&self, corpus: Corpus) -> Validation {
        self.validation.unwrap_or(match corpus {
            Corpus::Shd => Validation::Fraction,
            Corpus::Ssc => Validation::File,
        })
    }

    /// The path of `split` (`train`, `valid`, `test`).
    pub fn file(&self, corpus: Corpus, split: &str) -> PathBuf {
        let name = match split {
            "train" => &self.train_file,
            "valid" => &self.valid_file,
            _ => &self.test_file,
        };
        let name = if name.is_empty() { format!("{}_{split}.h5", corpus.prefix()) } else { name.clone() };
        Path::new(&self.data_dir).join(name)
    }

    /// Checks the settings that need no file.
    pub fn validate(&self, corpus: Corpus) -> Result<()> {
        self.binning.validate().context("task.binning")?;
        match self.validation(corpus) {
            Validation::Speaker if self.validation_speakers.is_empty() => {
                bail!("task.validation = \"speaker\": list the held-out speakers in task.validation_speakers")
            }
            Validation::Fraction if !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) => {
                bail!("task.validation_fraction = {}: must be in (0, 1)", self.validation_fraction)
            }
            _ => Ok(()),
        }
    }
}

/// A speech task: the binned training split, and fixed validation and test samples.
pub struct Speech {
    corpus: Corpus,
    config: SpeechConfig,
    train: BinnedDataset,
    /// The samples of `train` used for training (the rest is validation).
    epochs: Epochs,
    classes: usize,
    validation: Vec<Sample>,
    test: Vec<Sample>,
    /// The raw test events, read on the first time warp.
    raw_test: OnceLock<SpikeDataset>,
}

fn sample(binned: &BinnedSample, label: u16) -> Sample {
    Sample { input: Input::Events(binned.clone()), target: Target::Class(usize::from(label)) }
}

/// The first `limit` samples (all for 0).
fn truncate(mut ds: BinnedDataset, limit: usize) -> BinnedDataset {
    if limit > 0 && limit < ds.len() {
        ds.samples.truncate(limit);
        ds.labels.truncate(limit);
        if let Some(s) = ds.speakers.as_mut() {
            s.truncate(limit);
        }
    }
    ds
}

impl Speech {
    pub fn new(corpus: Corpus, config: SpeechConfig, seed: u64) -> Result<Self> {
        config.validate(corpus)?;
        let cache = Path::new(&config.cache_dir);
        let load = |split: &str| -> Result<BinnedDataset> {
            let path = config.file(corpus, split);
            if !path.is_file() {
                bail!(
                    "task.data_dir = {:?}: no {} (the official {} files are needed; see data/README.md)",
                    config.data_dir,
                    path.display(),
                    corpus.prefix().to_uppercase()
                );
            }
            load_binned(&path, &config.binning, cache)
        };
        let train = truncate(load("train")?, config.train_limit);
        let test = truncate(load("test")?, config.test_limit);
        if train.is_empty() || test.is_empty() {
            bail!("task: the train file has {} samples and the test file {}; both need some", train.len(), test.len());
        }
        let mut classes = train.classes.max(test.classes);

        let all: Vec<usize> = (0..train.len()).collect();
        let (train_indices, validation) = match config.validation(corpus) {
            Validation::File => {
                let valid = load("valid")?;
                classes = classes.max(valid.classes);
                let samples: Vec<Sample> =
                    valid.samples.iter().zip(&valid.labels).map(|(s, l)| sample(s, *l)).collect();
                (all, samples)
            }
            Validation::Fraction => {
                let mut shuffled = all;
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(SPLIT_STREAM);
                shuffled.shuffle(&mut rng);
                let held =
                    ((config.validation_fraction * train.len() as f64).round() as usize).clamp(1, train.len() - 1);
                let (held, rest) = shuffled.split_at(held);
                let (mut held, mut rest) = (held.to_vec(), rest.to_vec());
                held.sort_unstable();
                rest.sort_unstable();
                (rest, held.iter().map(|&k| sample(&train.samples[k], train.labels[k])).collect())
            }
            Validation::Speaker => {
                let speakers = train.speakers.as_ref().with_context(|| {
                    format!(
                        "task.validation = \"speaker\": {} has no /extra/speaker; use validation = \"fraction\"",
                        config.file(corpus, "train").display()
                    )
                })?;
                let (held, rest): (Vec<usize>, Vec<usize>) =
                    all.into_iter().partition(|&k| config.validation_speakers.contains(&speakers[k]));
                if held.is_empty() || rest.is_empty() {
                    let mut present: Vec<u16> = speakers.clone();
                    present.sort_unstable();
                    present.dedup();
                    bail!(
                        "task.validation_speakers = {:?}: holds out {} of {} training samples; the train file has speakers {:?}",
                        config.validation_speakers,
                        held.len(),
                        speakers.len(),
                        present
                    );
                }
                (rest, held.iter().map(|&k| sample(&train.samples[k], train.labels[k])).collect())
            }
            Validation::None => (all, Vec::new()),
        };
        let test_samples = test.samples.iter().zip(&test.labels).map(|(s, l)| sample(s, *l)).collect();
        tracing::info!(
            train = train_indices.len(),
            validation = validation.len(),
            test = test.len(),
            classes,
            "{} loaded",
            corpus.prefix().to_uppercase()
        );
        Ok(Speech {
            corpus,
            epochs: Epochs::new(seed, train_indices),
            config,
            train,
            classes,
            validation,
            test: test_samples,
            raw_test: OnceLock::new(),
        })
    }

    /// The test samples' events as stored (for the time warp).
    fn raw_test(&self) -> Result<&SpikeDataset> {
        if let Some(raw) = self.raw_test.get() {
            return Ok(raw);
        }
        let mut raw = read_spike_file(&self.config.file(self.corpus, "test"))?;
        if self.config.test_limit > 0 {
            raw.samples.truncate(self.config.test_limit);
            raw.labels.truncate(self.config.test_limit);
        }
        Ok(self.raw_test.get_or_init(|| raw))
    }
}

/// A generator for perturbing sample `k` under a condition: a function of the
/// seed, the condition and `k` alone (so of no thread schedule).
fn perturbation_rng(seed: u64, condition: &Perturbation, k: usize) -> ChaCha8Rng {
    let (tag, value) = match condition {
        Perturbation::Delete(p) => (1u64, *p),
        Perturbation::Add(p) => (2, *p),
        Perturbation::TimeWarp(a) => (3, *a),
    };
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ value.to_bits().rotate_left(17));
    rng.set_stream(k as u64);
    rng
}

/// Builds a [`BinnedSample`] step after step, in the binning mode of `like`.
struct Bins(BinnedSample);

impl Bins {
    fn like(like: &BinnedSample) -> Self {
        Bins(BinnedSample { offsets: vec![0], active: Vec::new(), counts: like.counts.as_ref().map(|_| Vec::new()) })
    }

    /// Channel `c` holds `count` spikes at the current step (nothing for 0).
    fn push(&mut self, c: u32, count: u16) {
        if count > 0 {
            self.0.active.push(c);
            if let Some(counts) = self.0.counts.as_mut() {
                counts.push(count);
            }
        }
    }

    fn end_step(&mut self) {
        self.0.offsets.push(self.0.active.len() as u32);
    }
}

/// Each spike of `s` removed with probability `p` (a count `n` becomes
/// Binomial(n, 1 - p)).
fn delete_spikes(s: &BinnedSample, p: f64, rng: &mut ChaCha8Rng) -> BinnedSample {
    let mut out = Bins::like(s);
    for t in 0..s.steps() {
        let counts = s.counts_at(t);
        for (k, &c) in s.active_at(t).iter().enumerate() {
            let n = counts.map_or(1, |n| n[k]);
            out.push(c, (0..n).filter(|_| rng.gen::<f64>() >= p).count() as u16);
        }
        out.end_step();
    }
    out.0
}

/// Each empty bin `(t, c)` of `s` (`c < channels`) set to one spike with probability `p`.
fn add_spikes(s: &BinnedSample, p: f64, channels: usize, rng: &mut ChaCha8Rng) -> BinnedSample {
    let mut out = Bins::like(s);
    for t in 0..s.steps() {
        let (active, counts) = (s.active_at(t), s.counts_at(t));
        let mut next = 0;
        for c in 0..channels as u32 {
            if active.get(next) == Some(&c) {
                out.push(c, counts.map_or(1, |n| n[next]));
                next += 1;
            } else {
                out.push(c, u16::from(rng.gen::<f64>() < p));
            }
        }
        out.end_step();
    }
    out.0
}

impl EpochSource for Speech {
    /// Epochs over the training samples (see [`Epochs`]).
    fn batch(&mut self, iteration: u64, n: usize) -> Vec<Sample> {
        let batch = self.epochs.batch(iteration, n);
        batch.into_iter().map(|k| sample(&self.train.samples[k], self.train.labels[k])).collect()
    }

    fn len(&self) -> usize {
        self.epochs.len()
    }
}

impl Task for Speech {
    /// The bin length (the authors' SHD setting runs the model with dt = 1 ms on 4 ms bins).
    fn step_seconds(&self) -> Option<f64> {
        Some(self.config.binning.dt_s())
    }

    fn shape(&self) -> TaskShape {
        TaskShape {
            channels: self.config.binning.channels,
            outputs: self.classes,
            steps: self.train.steps,
            kind: TaskKind::Classification,
        }
    }

    fn training(&mut self) -> Training<'_> {
        Training::Epochs(self)
    }

    fn validation(&self) -> &[Sample] {
        &self.validation
    }

    fn test(&self) -> &[Sample] {
        &self.test
    }

    fn perturbed_test(&self, perturbation: &Perturbation, seed: u64) -> Result<(Vec<Sample>, usize)> {
        let steps = self.train.steps;
        let channels = self.config.binning.channels;
        if let Perturbation::TimeWarp(alpha) = *perturbation {
            let raw = self.raw_test()?;
            let binning = &self.config.binning;
            let warped = binning.steps(alpha);
            if warped == 0 {
                bail!("--time-warp {alpha}: leaves no time step");
            }
            let samples = raw
                .samples
                .par_iter()
                .zip(&raw.labels)
                .map(|(events, label)| sample(&bin_sample(events, binning, alpha), *label))
                .collect();
            return Ok((samples, warped));
        }
        let samples = self
            .test
            .par_iter()
            .enumerate()
            .map(|(k, s)| {
                let Input::Events(events) = &s.input else { unreachable!("speech samples are events") };
                let mut rng = perturbation_rng(seed, perturbation, k);
                let events = match *perturbation {
                    Perturbation::Delete(p) => delete_spikes(events, p, &mut rng),
                    Perturbation::Add(p) => add_spikes(events, p, channels, &mut rng),
                    Perturbation::TimeWarp(_) => unreachable!("binned from the raw events above"),
                };
                Sample { input: Input::Events(events), target: s.target.clone() }
            })
            .collect();
        Ok((samples, steps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(steps: &[&[u32]]) -> BinnedSample {
        let mut s = BinnedSample { offsets: vec![0], active: Vec::new(), counts: None };
        for step in steps {
            s.active.extend_from_slice(step);
            s.offsets.push(s.active.len() as u32);
        }
        s
    }

    #[test]
    fn deletion_and_addition_probabilities() {
        let full: Vec<u32> = (0..100).collect();
        let s = events(&vec![&full[..]; 100]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(delete_spikes(&s, 0.0, &mut rng), s);
        assert_eq!(delete_spikes(&s, 1.0, &mut rng).active.len(), 0);
        let kept = delete_spikes(&s, 0.3, &mut rng);
        kept.validate(100, 100, true).unwrap();
        let share = kept.active.len() as f64 / 10_000.0;
        assert!((share - 0.7).abs() < 0.03, "kept {share}");

        let empty = events(&vec![&[][..]; 100]);
        let added = add_spikes(&empty, 0.1, 100, &mut rng);
        added.validate(100, 100, true).unwrap();
        let share = added.active.len() as f64 / 10_000.0;
        assert!((share - 0.1).abs() < 0.02, "added {share}");
        // existing spikes stay, whatever p
        let some = events(&[&[1, 5], &[], &[99]]);
        let added = add_spikes(&some, 0.5, 100, &mut rng);
        for t in 0..3 {
            assert!(some.active_at(t).iter().all(|c| added.active_at(t).contains(c)));
        }
        assert_eq!(add_spikes(&some, 0.0, 100, &mut rng), some);
    }

    #[test]
    fn counts_are_thinned_binomially() {
        let mut s = events(&[&[3, 4]]);
        s.counts = Some(vec![1000, 1]);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let d = delete_spikes(&s, 0.5, &mut rng);
        let c = d.counts.as_ref().unwrap();
        assert!(d.active[0] == 3 && (400..600).contains(&c[0]), "{d:?}");
        d.validate(1, 10, false).unwrap();
    }
}
