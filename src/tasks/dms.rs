//! Delayed match-to-sample (DMS), HetSyn paper §4.2.
//!
//! Input channels come in three groups of `channels_per_group`: left cue
//! (`0..g`), right cue (`g..2g`) and noise (`2g..3g`). Cue 1 is shown from
//! `cue_start` for `cue_duration`, then comes a `delay`, then cue 2 for
//! `cue_duration`; the trial ends when cue 2 ends. During a Left (Right) cue the
//! left (right) channels fire Poisson spikes at `cue_rate`; the noise channels
//! fire at `noise_rate` for the whole trial. With `addition_noise_rate` > 0,
//! independent Poisson spikes at that rate are added on top on *every* channel
//! for the whole trial (cue and noise channels alike; a step that already
//! spikes stays one spike). Times are in seconds, rates in Hz.
//!
//! Step `n` covers `[n*dt, (n+1)*dt)`. A window `[t0, t1)` occupies steps
//! `round(t0/dt)..round(t1/dt)`, and the trial has `round(t_end/dt)` steps.
//! Label: class [`MATCH`] (0) for LL/RR, class [`MISMATCH`] (1) for LR/RL.

use std::ops::Range;

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Input, Sample, Target, Task, TaskKind, TaskShape, Training, TrialSource};
use crate::data::BinnedSample;
use crate::model::BulkUniform;

/// Class index of a match trial (both cues on the same side).
pub const MATCH: usize = 0;
/// Class index of a mismatch trial (cues on different sides).
pub const MISMATCH: usize = 1;

/// ChaCha8 stream of the validation set (seeded with the run seed).
pub const VALIDATION_STREAM: u64 = 1;
/// ChaCha8 stream of the test set (seeded with the run seed).
pub const TEST_STREAM: u64 = 2;

/// Longest accepted trial, in steps.
const MAX_STEPS: usize = 10_000_000;
/// Largest accepted trial, in input values (`steps * channels`).
const MAX_VALUES_PER_TRIAL: usize = 1 << 28;
/// Largest accepted held-out set (validation + test), in input values.
const MAX_HELD_OUT_VALUES: usize = 1 << 30;
/// Tolerance on `rate * dt <= 1` for rounding in `1/dt`.
const PROB_TOLERANCE: f64 = 1e-9;

/// Side of one cue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cue {
    Left,
    Right,
}

/// The class of a trial with cues `first` then `second`: [`MATCH`] or [`MISMATCH`].
pub fn label(first: Cue, second: Cue) -> usize {
    if first == second {
        MATCH
    } else {
        MISMATCH
    }
}

/// Settings of the DMS task (the `[task]` config section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DmsConfig {
    /// Channels in each of the left, right and noise groups (input = 3x this).
    pub channels_per_group: usize,
    /// Onset of cue 1, seconds.
    pub cue_start: f64,
    /// Length of each cue, seconds.
    pub cue_duration: f64,
    /// Gap between the end of cue 1 and the start of cue 2, seconds.
    pub delay: f64,
    /// Poisson rate of the cued channels during a cue, Hz.
    pub cue_rate: f64,
    /// Poisson rate of the noise channels for the whole trial, Hz.
    pub noise_rate: f64,
    /// Poisson rate of spikes added on every input channel for the whole
    /// trial, in training and evaluation, Hz (0: none; the paper's "addition
    /// noise" of Fig. A3 in one of its two readings).
    pub addition_noise_rate: f64,
    /// Trials in the fixed validation set (may be 0).
    pub validation_trials: usize,
    /// Trials in the fixed test set (at least 1).
    pub test_trials: usize,
}

impl Default for DmsConfig {
    fn default() -> Self {
        Self {
            channels_per_group: 10,
            cue_start: 0.05,
            cue_duration: 0.1,
            delay: 0.8,
            cue_rate: 40.0,
            noise_rate: 10.0,
            addition_noise_rate: 0.0,
            validation_trials: 256,
            test_trials: 512,
        }
    }
}

impl DmsConfig {
    /// Checks every value for time step `dt` (seconds). Errors name the key as
    /// `task.<field>` with the offending value.
    pub fn validate(&self, dt: f64) -> Result<()> {
        if !(dt.is_finite() && dt > 0.0) {
            bail!("model.dt = {dt}: must be a finite number of seconds > 0");
        }
        if self.channels_per_group == 0 {
            bail!("task.channels_per_group = 0: must be >= 1");
        }
        let Some(channels) = self.channels_per_group.checked_mul(3) else {
            bail!("task.channels_per_group = {}: too large", self.channels_per_group);
        };
        if !(self.cue_start.is_finite() && self.cue_start >= 0.0) {
            bail!("task.cue_start = {}: must be a finite number of seconds >= 0", self.cue_start);
        }
        if !(self.cue_duration.is_finite() && self.cue_duration > 0.0) {
            bail!("task.cue_duration = {}: must be a finite number of seconds > 0", self.cue_duration);
        }
        if !(self.delay.is_finite() && self.delay >= 0.0) {
            bail!("task.delay = {}: must be a finite number of seconds >= 0", self.delay);
        }
        check_rate("cue_rate", self.cue_rate, dt)?;
        check_rate("noise_rate", self.noise_rate, dt)?;
        check_rate("addition_noise_rate", self.addition_noise_rate, dt)?;
        if self.test_trials == 0 {
            bail!("task.test_trials = 0: must be >= 1");
        }

        let end = self.trial_end();
        let end_steps = end / dt;
        if !(end_steps.is_finite() && end_steps.round() <= MAX_STEPS as f64) {
            bail!(
                "task.delay = {}: trial length cue_start + 2*cue_duration + delay = {end} s \
                 is more than {MAX_STEPS} steps of dt = {dt} s",
                self.delay
            );
        }
        let windows = self.cue_windows(dt);
        for (i, w) in windows.iter().enumerate() {
            if w.is_empty() {
                bail!(
                    "task.cue_duration = {}: cue {} covers no time step at dt = {dt} s \
                     (steps {}..{}); must span at least one step",
                    self.cue_duration,
                    i + 1,
                    w.start,
                    w.end
                );
            }
        }
        let steps = windows[1].end;
        let per_trial = steps.saturating_mul(channels);
        if per_trial > MAX_VALUES_PER_TRIAL {
            bail!(
                "task.channels_per_group = {}: a trial of {steps} steps x {channels} channels \
                 has more than {MAX_VALUES_PER_TRIAL} values; reduce channels_per_group or \
                 the trial length",
                self.channels_per_group
            );
        }
        let held_out = self.validation_trials.saturating_add(self.test_trials).saturating_mul(per_trial);
        if held_out > MAX_HELD_OUT_VALUES {
            bail!(
                "task.test_trials = {} (task.validation_trials = {}): held-out sets of \
                 {per_trial} values per trial exceed {MAX_HELD_OUT_VALUES} values",
                self.test_trials,
                self.validation_trials
            );
        }
        Ok(())
    }

    /// Time steps per trial at step `dt` (seconds): `round(trial_end / dt)`.
    /// Meaningful only for a config that passed [`DmsConfig::validate`].
    pub fn steps(&self, dt: f64) -> usize {
        self.cue_windows(dt)[1].end
    }

    /// Step ranges of cue 1 and cue 2 at step `dt` (seconds); cue 2 ends at the
    /// last step of the trial. Meaningful only after [`DmsConfig::validate`].
    pub fn cue_windows(&self, dt: f64) -> [Range<usize>; 2] {
        let start1 = self.cue_start;
        let end1 = start1 + self.cue_duration;
        let start2 = end1 + self.delay;
        let end2 = start2 + self.cue_duration;
        let step = |t: f64| (t / dt).round() as usize;
        [step(start1)..step(end1), step(start2)..step(end2)]
    }

    /// End of the trial (end of cue 2), seconds.
    pub fn trial_end(&self) -> f64 {
        self.cue_start + self.cue_duration + self.delay + self.cue_duration
    }
}

fn check_rate(key: &str, rate: f64, dt: f64) -> Result<()> {
    if !(rate.is_finite() && rate >= 0.0) {
        bail!("task.{key} = {rate}: must be a finite rate in Hz >= 0");
    }
    let p = rate * dt;
    if p > 1.0 + PROB_TOLERANCE {
        bail!(
            "task.{key} = {rate}: spike probability per step rate*dt = {p} must be <= 1 \
             (rate <= 1/dt = {} Hz at dt = {dt} s)",
            1.0 / dt
        );
    }
    Ok(())
}

/// The DMS task with its fixed validation and test sets.
pub struct Dms {
    config: DmsConfig,
    dt: f64,
    validation: Vec<Sample>,
    test: Vec<Sample>,
}

impl Dms {
    /// Validates `config` for step `dt` (seconds) and draws the validation and
    /// test sets once, from `ChaCha8Rng::seed_from_u64(seed)` on streams
    /// [`VALIDATION_STREAM`] and [`TEST_STREAM`], so they are fixed per seed.
    pub fn new(config: DmsConfig, dt: f64, seed: u64) -> Result<Self> {
        config.validate(dt)?;
        let mut dms = Self { config, dt, validation: Vec::new(), test: Vec::new() };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(VALIDATION_STREAM);
        dms.validation = dms.draw_trials(dms.config.validation_trials, &mut rng);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(TEST_STREAM);
        dms.test = dms.draw_trials(dms.config.test_trials, &mut rng);
        Ok(dms)
    }

    pub fn config(&self) -> &DmsConfig {
        &self.config
    }

    /// Time step, seconds.
    pub fn dt(&self) -> f64 {
        self.dt
    }

    /// Draws `n` trials with `rng`. Each of LL, RR, LR, RL occurs `n/4` or
    /// `n/4 + 1` times and the match and mismatch counts differ by at most 1;
    /// the trial order is shuffled.
    pub fn draw_trials(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<Sample> {
        balanced_cues(n, rng).into_iter().map(|(first, second)| self.trial(first, second, rng)).collect()
    }

    /// One trial with the given cue sides; spikes drawn with `rng`.
    pub fn trial(&self, first: Cue, second: Cue, rng: &mut ChaCha8Rng) -> Sample {
        let g = self.config.channels_per_group;
        let channels = 3 * g;
        let windows = self.config.cue_windows(self.dt);
        let steps = windows[1].end;
        let p_cue = (self.config.cue_rate * self.dt).clamp(0.0, 1.0);
        let p_noise = (self.config.noise_rate * self.dt).clamp(0.0, 1.0);
        let p_added = (self.config.addition_noise_rate * self.dt).clamp(0.0, 1.0);
        let cue: Vec<Option<Cue>> =
            (0..steps).map(|step| windows.iter().position(|w| w.contains(&step)).map(|k| [first, second][k])).collect();
        // one number per channel drawn (a probability of 0 draws none), in bulk
        let cue_draws = if p_cue > 0.0 { g } else { 0 };
        let noise_draws = if p_noise > 0.0 { channels - 2 * g } else { 0 };
        let added_draws = if p_added > 0.0 { channels } else { 0 };
        let draws = cue.iter().map(|c| noise_draws + added_draws + c.map_or(0, |_| cue_draws)).sum();
        let mut draws = BulkUniform::draw(rng, draws);
        // the spiking channels of each step, in increasing order, as the
        // events the network reads
        let mut events = BinnedSample { offsets: Vec::with_capacity(steps + 1), active: Vec::new(), counts: None };
        events.offsets.push(0);
        let mut row = vec![0.0f32; channels];
        for step_cue in &cue {
            let cue_channels = match step_cue {
                Some(Cue::Left) => 0..g,
                Some(Cue::Right) => g..2 * g,
                None => 0..0,
            };
            if p_added > 0.0 {
                // added spikes may fall on any channel: through a row of values
                row.fill(0.0);
                bernoulli_fill(&mut row[cue_channels], p_cue, &mut draws);
                bernoulli_fill(&mut row[2 * g..], p_noise, &mut draws);
                bernoulli_fill(&mut row, p_added, &mut draws);
                events.active.extend((0..channels as u32).filter(|&c| row[c as usize] != 0.0));
            } else {
                push_spikes(&mut events.active, cue_channels, p_cue, &mut draws);
                push_spikes(&mut events.active, 2 * g..channels, p_noise, &mut draws);
            }
            events.offsets.push(events.active.len() as u32);
        }
        Sample { input: Input::Events(events), target: Target::Class(label(first, second)) }
    }
}

/// Sets each value to 1.0 with probability `p`, else leaves it 0.0.
fn bernoulli_fill(values: &mut [f32], p: f64, draws: &mut BulkUniform) {
    if p <= 0.0 {
        return;
    }
    let n = values.len();
    for (v, spike) in values.iter_mut().zip(draws.below(p, n)) {
        if spike {
            *v = 1.0;
        }
    }
}

/// Appends each channel of `channels` with probability `p` (one draw each, in
/// order, as [`bernoulli_fill`]).
fn push_spikes(active: &mut Vec<u32>, channels: Range<usize>, p: f64, draws: &mut BulkUniform) {
    if p <= 0.0 || channels.is_empty() {
        return;
    }
    for (first, mut mask) in channels.clone().step_by(64).zip(draws.below_bits(p, channels.len())) {
        while mask != 0 {
            active.push((first + mask.trailing_zeros() as usize) as u32);
            mask &= mask - 1;
        }
    }
}

/// Cue pairs for `n` trials: a random cycle alternating match and mismatch
/// combinations (so every prefix is balanced), repeated, then shuffled.
fn balanced_cues(n: usize, rng: &mut ChaCha8Rng) -> Vec<(Cue, Cue)> {
    use Cue::{Left, Right};
    let mut matches = [(Left, Left), (Right, Right)];
    let mut mismatches = [(Left, Right), (Right, Left)];
    matches.shuffle(rng);
    mismatches.shuffle(rng);
    let (a, b) = if rng.gen::<bool>() { (matches, mismatches) } else { (mismatches, matches) };
    let cycle = [a[0], b[0], a[1], b[1]];
    let mut cues: Vec<_> = (0..n).map(|k| cycle[k % 4]).collect();
    cues.shuffle(rng);
    cues
}

impl TrialSource for Dms {
    fn trials(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<Sample> {
        self.draw_trials(n, rng)
    }
}

impl Task for Dms {
    fn shape(&self) -> TaskShape {
        TaskShape {
            channels: 3 * self.config.channels_per_group,
            outputs: 2,
            steps: self.config.steps(self.dt),
            kind: TaskKind::Classification,
        }
    }

    fn training(&mut self) -> Training<'_> {
        Training::Trials(self)
    }

    fn validation(&self) -> &[Sample] {
        &self.validation
    }

    fn test(&self) -> &[Sample] {
        &self.test
    }

    /// `left_cue` (`0..g`), `right_cue` (`g..2g`), both together as `cue`
    /// (`0..2g`), and `noise` (`2g..3g`).
    fn input_groups(&self) -> Vec<(String, Range<usize>)> {
        let g = self.config.channels_per_group;
        vec![
            ("left_cue".into(), 0..g),
            ("right_cue".into(), g..2 * g),
            ("cue".into(), 0..2 * g),
            ("noise".into(), 2 * g..3 * g),
        ]
    }

    fn channel_groups(&self) -> Vec<(String, Range<usize>)> {
        let g = self.config.channels_per_group;
        vec![("left cue".into(), 0..g), ("right cue".into(), g..2 * g), ("noise".into(), 2 * g..3 * g)]
    }

    /// Index [`MATCH`] is `match`, [`MISMATCH`] is `mismatch`.
    fn class_names(&self) -> Vec<String> {
        vec!["match".into(), "mismatch".into()]
    }

    /// `cue 1` and `cue 2`.
    fn marked_windows(&self) -> Vec<(String, Range<usize>)> {
        let [first, second] = self.config.cue_windows(self.dt);
        vec![("cue 1".into(), first), ("cue 2".into(), second)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const DT: f64 = 0.005;

    fn small(validation_trials: usize, test_trials: usize) -> DmsConfig {
        DmsConfig { validation_trials, test_trials, ..DmsConfig::default() }
    }

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    fn class(s: &Sample) -> usize {
        match s.target {
            Target::Class(c) => c,
            Target::Series(_) => panic!("DMS targets must be classes"),
        }
    }

    /// Whether `s` is a trial of `steps` steps of binary spikes on `channels`
    /// channels: events without counts, each step's channels increasing and
    /// in range.
    fn is_spike_trial(s: &Sample, steps: usize, channels: usize) -> bool {
        match &s.input {
            Input::Events(e) => {
                e.counts.is_none()
                    && e.steps() == steps
                    && (0..steps).all(|t| {
                        let active = e.active_at(t);
                        active.windows(2).all(|w| w[0] < w[1]) && active.iter().all(|&c| (c as usize) < channels)
                    })
            }
            Input::Dense(_) => false,
        }
    }

    /// Spike count of channels `chans` over steps `steps`.
    fn count(s: &Sample, channels: usize, steps: Range<usize>, chans: Range<usize>) -> f64 {
        let x = s.input.to_dense(channels);
        steps.flat_map(|t| chans.clone().map(move |c| t * channels + c)).map(|i| x[i] as f64).sum()
    }

    /// Cue side read from the spikes in `window`; None if ambiguous.
    fn decode(s: &Sample, g: usize, window: Range<usize>) -> Option<Cue> {
        let left = count(s, 3 * g, window.clone(), 0..g);
        let right = count(s, 3 * g, window, g..2 * g);
        match (left > 0.0, right > 0.0) {
            (true, false) => Some(Cue::Left),
            (false, true) => Some(Cue::Right),
            _ => None,
        }
    }

    #[test]
    fn default_shape_is_210_steps_by_30_channels() {
        let dms = Dms::new(small(4, 4), DT, 1).unwrap();
        let shape = dms.shape();
        assert_eq!(shape, TaskShape { channels: 30, outputs: 2, steps: 210, kind: TaskKind::Classification });
        assert_eq!(dms.config().cue_windows(DT), [10..30, 190..210]);
        for s in dms.validation().iter().chain(dms.test()) {
            assert!(is_spike_trial(s, 210, 30));
        }
        let batch = Dms::new(small(0, 1), DT, 1).unwrap().training().batch(0, 3, &mut rng(5));
        assert_eq!(batch.len(), 3);
        assert!(batch.iter().all(|s| is_spike_trial(s, 210, 30)));
    }

    /// The named groups are the channels that fire for a left cue, a right cue
    /// and background noise.
    #[test]
    fn input_groups_are_the_cue_and_noise_channels() {
        let g = 4;
        let spiking_groups = |cue_rate: f64, noise_rate: f64, first: Cue| {
            let cfg = DmsConfig { channels_per_group: g, cue_rate, noise_rate, ..small(1, 1) };
            let dms = Dms::new(cfg, DT, 0).unwrap();
            let s = dms.trial(first, first, &mut rng(3));
            let groups = dms.input_groups();
            let cover = |name: &str| groups.iter().find(|(n, _)| n == name).unwrap().1.clone();
            assert_eq!((cover("left_cue").start, cover("left_cue").end), (0, g));
            assert_eq!((cover("cue").start, cover("cue").end, cover("noise").end), (0, 2 * g, 3 * g));
            groups
                .into_iter()
                .filter(|(_, chans)| count(&s, 3 * g, 0..dms.shape().steps, chans.clone()) > 0.0)
                .map(|(name, _)| name)
                .collect::<Vec<_>>()
        };
        assert_eq!(spiking_groups(200.0, 0.0, Cue::Left), ["left_cue", "cue"]);
        assert_eq!(spiking_groups(200.0, 0.0, Cue::Right), ["right_cue", "cue"]);
        assert_eq!(spiking_groups(0.0, 100.0, Cue::Left), ["noise"]);
    }

    /// Plots label the channels by disjoint groups that tile the input, name
    /// the classes by what they mean, and mark the cues.
    #[test]
    fn plot_labels_are_the_task_structure() {
        let dms = Dms::new(DmsConfig { channels_per_group: 4, ..small(1, 1) }, DT, 0).unwrap();
        let groups = dms.channel_groups();
        let names: Vec<&str> = groups.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["left cue", "right cue", "noise"]);
        let tiles: Vec<usize> = groups.iter().flat_map(|(_, c)| c.clone()).collect();
        assert_eq!(tiles, (0..dms.shape().channels).collect::<Vec<_>>());
        for ((_, shown), stats) in groups.iter().zip(["left_cue", "right_cue", "noise"]) {
            assert_eq!(Some(shown), dms.input_groups().iter().find(|(n, _)| n == stats).map(|(_, c)| c));
        }
        let classes = dms.class_names();
        assert_eq!(classes[label(Cue::Left, Cue::Left)], "match");
        assert_eq!(classes[label(Cue::Left, Cue::Right)], "mismatch");
        let windows: Vec<(String, Range<usize>)> =
            dms.config().cue_windows(DT).into_iter().enumerate().map(|(k, w)| (format!("cue {}", k + 1), w)).collect();
        assert_eq!(dms.marked_windows(), windows);
    }

    /// Addition noise fires on every channel at its rate for the whole trial,
    /// on top of the cues and the noise channels; at 0 Hz the trials are the
    /// same draws as without the key.
    #[test]
    fn addition_noise_adds_spikes_on_every_channel() {
        let g = 10;
        let quiet = DmsConfig { cue_rate: 0.0, noise_rate: 0.0, ..small(1, 1) };
        let steps = quiet.steps(DT);
        let rate_of = |cfg: DmsConfig, chans: Range<usize>| {
            let dms = Dms::new(cfg, DT, 0).unwrap();
            let trials = dms.draw_trials(400, &mut rng(8));
            assert!(trials.iter().all(|s| is_spike_trial(s, steps, 3 * g)));
            let spikes: f64 = trials.iter().map(|s| count(s, 3 * g, 0..steps, chans.clone())).sum();
            spikes / (trials.len() * steps * chans.len()) as f64 / DT
        };
        for chans in [0..g, g..2 * g, 2 * g..3 * g] {
            let hz = rate_of(DmsConfig { addition_noise_rate: 20.0, ..quiet.clone() }, chans.clone());
            assert!((hz - 20.0).abs() < 1.0, "channels {chans:?}: {hz} Hz, expected 20");
            assert_eq!(rate_of(quiet.clone(), chans), 0.0);
        }
        // on top of the noise channels' own rate: 1 - (1 - p1)(1 - p2) per step
        let both = rate_of(DmsConfig { noise_rate: 10.0, addition_noise_rate: 20.0, ..quiet.clone() }, 2 * g..3 * g);
        let expected = (1.0 - (1.0 - 10.0 * DT) * (1.0 - 20.0 * DT)) / DT;
        assert!((both - expected).abs() < 1.5, "noise channels: {both} Hz, expected {expected}");
        let zero = Dms::new(DmsConfig { addition_noise_rate: 0.0, ..small(3, 3) }, DT, 4).unwrap();
        let default = Dms::new(small(3, 3), DT, 4).unwrap();
        assert_eq!(zero.test(), default.test());
        let err = DmsConfig { addition_noise_rate: -1.0, ..small(1, 1) }.validate(DT).unwrap_err();
        assert!(err.to_string().contains("task.addition_noise_rate = -1"), "{err}");
    }

    #[test]
    fn long_delay_step_count() {
        let cfg = DmsConfig { delay: 2.5, ..small(2, 2) };
        // 0.05 + 0.1 + 2.5 + 0.1 = 2.75 s = 550 steps.
        assert_eq!(cfg.steps(DT), 550);
        assert_eq!(cfg.cue_windows(DT), [10..30, 530..550]);
        let dms = Dms::new(cfg, DT, 0).unwrap();
        assert_eq!(dms.shape().steps, 550);
        assert!(is_spike_trial(&dms.test()[0], 550, 30));
        // Other step sizes.
        assert_eq!(DmsConfig::default().steps(0.001), 1050);
        assert_eq!(DmsConfig::default().steps(0.01), 105);
    }

    #[test]
    fn cue_channels_silent_outside_their_windows() {
        let g = 10;
        let dms = Dms::new(small(1, 1), DT, 3).unwrap();
        let [w1, w2] = dms.config().cue_windows(DT);
        let mut r = rng(11);
        for s in dms.draw_trials(200, &mut r) {
            for t in 0..210 {
                let in_cue = w1.contains(&t) || w2.contains(&t);
                let left = count(&s, 30, t..t + 1, 0..g);
                let right = count(&s, 30, t..t + 1, g..2 * g);
                if !in_cue {
                    assert_eq!(left + right, 0.0, "cue spike outside cue at step {t}");
                } else {
                    assert!(left == 0.0 || right == 0.0, "both sides fire at step {t}");
                }
            }
            // The opposite side is silent for the whole of each cue.
            for w in [w1.clone(), w2.clone()] {
                assert!(decode(&s, g, w).is_some());
            }
        }
    }

    #[test]
    fn empirical_rates_match_config() {
        let g = 10;
        let dms = Dms::new(small(1, 1), DT, 4).unwrap();
        let [w1, w2] = dms.config().cue_windows(DT);
        let trials = dms.draw_trials(400, &mut rng(12));
        let (mut cue_spikes, mut cue_bins) = (0.0, 0.0);
        let (mut noise_spikes, mut noise_bins) = (0.0, 0.0);
        for s in &trials {
            for w in [w1.clone(), w2.clone()] {
                let side = decode(s, g, w.clone()).expect("a cue side");
                let chans = match side {
                    Cue::Left => 0..g,
                    Cue::Right => g..2 * g,
                };
                cue_spikes += count(s, 30, w.clone(), chans);
                cue_bins += (w.len() * g) as f64;
            }
            noise_spikes += count(s, 30, 0..210, 2 * g..3 * g);
            noise_bins += (210 * g) as f64;
        }
        let cue_rate = cue_spikes / (cue_bins * DT);
        let noise_rate = noise_spikes / (noise_bins * DT);
        assert!((cue_rate - 40.0).abs() < 4.0, "cue rate {cue_rate} Hz");
        assert!((noise_rate - 10.0).abs() < 1.0, "noise rate {noise_rate} Hz");
        // Tighter than 10% in practice.
        assert!((cue_rate - 40.0).abs() < 1.5, "cue rate {cue_rate} Hz");
        assert!((noise_rate - 10.0).abs() < 0.5, "noise rate {noise_rate} Hz");
    }

    #[test]
    fn zero_and_full_rates() {
        let cfg = DmsConfig { cue_rate: 1.0 / DT, noise_rate: 0.0, ..small(1, 1) };
        let dms = Dms::new(cfg, DT, 0).unwrap();
        let [w1, w2] = dms.config().cue_windows(DT);
        let s = dms.trial(Cue::Left, Cue::Right, &mut rng(0));
        assert_eq!(count(&s, 30, 0..210, 20..30), 0.0);
        assert_eq!(count(&s, 30, w1.clone(), 0..10), (w1.len() * 10) as f64);
        assert_eq!(count(&s, 30, w2.clone(), 10..20), (w2.len() * 10) as f64);
        assert_eq!(count(&s, 30, 0..210, 0..20), ((w1.len() + w2.len()) * 10) as f64);
        assert_eq!(s.target, Target::Class(MISMATCH));
    }

    #[test]
    fn labels_balanced_exactly_for_multiples_of_four() {
        let dms = Dms::new(small(256, 512), DT, 9).unwrap();
        for set in [dms.validation(), dms.test()] {
            let matches = set.iter().filter(|s| class(s) == MATCH).count();
            assert_eq!(matches * 2, set.len());
        }
        let g = 10;
        let [w1, w2] = dms.config().cue_windows(DT);
        for n in [4usize, 8, 40, 100] {
            let trials = dms.draw_trials(n, &mut rng(n as u64));
            let mut combos: HashMap<(Cue, Cue), usize> = HashMap::new();
            for s in &trials {
                let a = decode(s, g, w1.clone()).unwrap();
                let b = decode(s, g, w2.clone()).unwrap();
                *combos.entry((a, b)).or_default() += 1;
            }
            assert_eq!(combos.len(), 4);
            assert!(combos.values().all(|&c| c == n / 4), "{combos:?}");
        }
    }

    #[test]
    fn balanced_for_any_n() {
        for n in 0..=41usize {
            for seed in 0..8 {
                let cues = balanced_cues(n, &mut rng(seed * 100 + n as u64));
                assert_eq!(cues.len(), n);
                let mut counts: HashMap<(Cue, Cue), usize> = HashMap::new();
                for &c in &cues {
                    *counts.entry(c).or_default() += 1;
                }
                assert!(counts.values().all(|&c| c == n / 4 || c == n / 4 + 1));
                let matches = cues.iter().filter(|(a, b)| a == b).count();
                let mismatches = n - matches;
                assert!(matches.abs_diff(mismatches) <= 1, "n={n}: {matches} vs {mismatches}");
            }
        }
    }

    #[test]
    fn trial_order_is_shuffled() {
        let dms = Dms::new(small(0, 1), DT, 0).unwrap();
        let labels: Vec<usize> = dms.draw_trials(64, &mut rng(2)).iter().map(class).collect();
        // Not a fixed period-4 pattern.
        assert!((0..60).any(|k| labels[k] != labels[k + 4]));
    }

    #[test]
    fn label_matches_cues_in_input() {
        // At the full cue rate every cue step is unambiguous.
        for cue_rate in [1.0 / DT, 40.0] {
            let cfg = DmsConfig { cue_rate, ..small(64, 64) };
            let dms = Dms::new(cfg, DT, 21).unwrap();
            let [w1, w2] = dms.config().cue_windows(DT);
            let train = dms.draw_trials(64, &mut rng(8));
            for s in dms.validation().iter().chain(dms.test()).chain(&train) {
                let a = decode(s, 10, w1.clone()).unwrap();
                let b = decode(s, 10, w2.clone()).unwrap();
                assert_eq!(class(s), label(a, b));
                assert_eq!(class(s), if a == b { 0 } else { 1 });
            }
        }
        assert_eq!(label(Cue::Left, Cue::Left), MATCH);
        assert_eq!(label(Cue::Right, Cue::Right), MATCH);
        assert_eq!(label(Cue::Left, Cue::Right), MISMATCH);
        assert_eq!(label(Cue::Right, Cue::Left), MISMATCH);
    }

    #[test]
    fn held_out_sets_fixed_per_seed() {
        let a = Dms::new(small(16, 16), DT, 42).unwrap();
        let b = Dms::new(small(16, 16), DT, 42).unwrap();
        let c = Dms::new(small(16, 16), DT, 43).unwrap();
        assert_eq!(a.validation(), b.validation());
        assert_eq!(a.test(), b.test());
        assert_ne!(a.validation(), c.validation());
        assert_ne!(a.test(), c.test());
        assert_ne!(a.validation(), a.test());
        // Training draws on the default stream differ from the held-out sets.
        let train = a.draw_trials(16, &mut rng(42));
        assert_ne!(train.as_slice(), a.validation());
        assert_ne!(train.as_slice(), a.test());
    }

    #[test]
    fn same_rng_same_trials() {
        let dms = Dms::new(small(0, 1), DT, 0).unwrap();
        assert_eq!(dms.draw_trials(8, &mut rng(3)), dms.draw_trials(8, &mut rng(3)));
        assert_ne!(dms.draw_trials(8, &mut rng(3)), dms.draw_trials(8, &mut rng(4)));
    }

    fn err(cfg: DmsConfig, dt: f64) -> String {
        format!("{:#}", cfg.validate(dt).unwrap_err())
    }

    #[test]
    fn validate_accepts_defaults() {
        DmsConfig::default().validate(DT).unwrap();
        DmsConfig { delay: 0.0, cue_start: 0.0, ..DmsConfig::default() }.validate(DT).unwrap();
        DmsConfig { validation_trials: 0, ..DmsConfig::default() }.validate(DT).unwrap();
    }

    #[test]
    fn validate_rejects_bad_values_naming_the_key() {
        let d = DmsConfig::default;
        let m = err(DmsConfig { delay: -0.1, ..d() }, DT);
        assert!(m.contains("task.delay = -0.1"), "{m}");
        let m = err(DmsConfig { cue_rate: -3.0, ..d() }, DT);
        assert_eq!(m, "task.cue_rate = -3: must be a finite rate in Hz >= 0");
        let m = err(DmsConfig { noise_rate: -1.0, ..d() }, DT);
        assert!(m.contains("task.noise_rate = -1"), "{m}");
        let m = err(DmsConfig { cue_rate: 300.0, ..d() }, DT);
        assert!(m.contains("task.cue_rate = 300") && m.contains("<= 1"), "{m}");
        let m = err(DmsConfig { noise_rate: 201.0, ..d() }, DT);
        assert!(m.contains("task.noise_rate = 201"), "{m}");
        let m = err(DmsConfig { test_trials: 0, ..d() }, DT);
        assert!(m.contains("task.test_trials = 0"), "{m}");
        let m = err(DmsConfig { channels_per_group: 0, ..d() }, DT);
        assert!(m.contains("task.channels_per_group = 0"), "{m}");
        let m = err(DmsConfig { cue_duration: 0.0, ..d() }, DT);
        assert!(m.contains("task.cue_duration = 0"), "{m}");
        let m = err(DmsConfig { cue_duration: 0.001, ..d() }, DT);
        assert!(m.contains("task.cue_duration = 0.001") && m.contains("no time step"), "{m}");
        let m = err(DmsConfig { cue_start: -0.01, ..d() }, DT);
        assert!(m.contains("task.cue_start = -0.01"), "{m}");
        let m = err(DmsConfig { cue_start: f64::NAN, ..d() }, DT);
        assert!(m.contains("task.cue_start = NaN"), "{m}");
        let m = err(DmsConfig { delay: f64::INFINITY, ..d() }, DT);
        assert!(m.contains("task.delay = inf"), "{m}");
        let m = err(DmsConfig { delay: 1e300, ..d() }, DT);
        assert!(m.contains("task.delay"), "{m}");
        let m = err(DmsConfig { channels_per_group: usize::MAX, ..d() }, DT);
        assert!(m.contains("task.channels_per_group"), "{m}");
        let m = err(DmsConfig { test_trials: 1 << 40, ..d() }, DT);
        assert!(m.contains("task.test_trials"), "{m}");
        for dt in [0.0, -0.005, f64::NAN] {
            let m = err(d(), dt);
            assert!(m.starts_with("model.dt = "), "{m}");
        }
        assert!(Dms::new(DmsConfig { delay: -1.0, ..d() }, DT, 0).is_err());
    }

    #[test]
    fn config_deserializes_with_defaults_and_rejects_unknown_keys() {
        let cfg: DmsConfig = serde_json::from_str(r#"{"delay": 2.5}"#).unwrap();
        assert_eq!(cfg, DmsConfig { delay: 2.5, ..DmsConfig::default() });
        assert!(serde_json::from_str::<DmsConfig>(r#"{"dealy": 2.5}"#).is_err());
        let back: DmsConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn any_valid_config_gives_consistent_trials(
            g in 1usize..5,
            dt in 0.001f64..0.01,
            cue_start in 0.0f64..0.1,
            cue_duration in 0.01f64..0.1,
            delay in 0.0f64..0.3,
            cue_frac in 0.0f64..=1.0,
            noise_frac in 0.0f64..=1.0,
            n in 0usize..13,
            seed in any::<u64>(),
        ) {
            let cfg = DmsConfig {
                channels_per_group: g,
                cue_start,
                cue_duration,
                delay,
                cue_rate: cue_frac / dt,
                noise_rate: noise_frac / dt,
                addition_noise_rate: 0.0,
                validation_trials: 0,
                test_trials: 1,
            };
            let dms = Dms::new(cfg.clone(), dt, seed).unwrap();
            let steps = cfg.steps(dt);
            let [w1, w2] = cfg.cue_windows(dt);
            prop_assert!(!w1.is_empty() && !w2.is_empty());
            prop_assert!(w1.end <= w2.start && w2.end == steps);
            prop_assert_eq!(steps, (cfg.trial_end() / dt).round() as usize);
            let trials = dms.draw_trials(n, &mut rng(seed));
            prop_assert_eq!(trials.len(), n);
            let matches = trials.iter().filter(|s| class(s) == MATCH).count();
            prop_assert!(matches.abs_diff(n - matches) <= 1);
            for s in &trials {
                prop_assert!(is_spike_trial(s, steps, 3 * g));
                for t in 0..steps {
                    let left = count(s, 3 * g, t..t + 1, 0..g);
                    let right = count(s, 3 * g, t..t + 1, g..2 * g);
                    if !(w1.contains(&t) || w2.contains(&t)) {
                        prop_assert_eq!(left + right, 0.0);
                    }
                }
                let l1 = count(s, 3 * g, w1.clone(), 0..g);
                let r1 = count(s, 3 * g, w1.clone(), g..2 * g);
                let l2 = count(s, 3 * g, w2.clone(), 0..g);
                let r2 = count(s, 3 * g, w2.clone(), g..2 * g);
                prop_assert!(l1 == 0.0 || r1 == 0.0);
                prop_assert!(l2 == 0.0 || r2 == 0.0);
                if l1 + r1 > 0.0 && l2 + r2 > 0.0 {
                    let same = (l1 > 0.0) == (l2 > 0.0);
                    prop_assert_eq!(class(s), if same { MATCH } else { MISMATCH });
                }
            }
        }
    }
}
