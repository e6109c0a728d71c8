//! Pattern generation (HetSyn paper §4.1): a frozen 500 ms segment of Poisson
//! spikes is presented three times, with silent gaps between, on top of
//! background Poisson noise redrawn every trial; the readout must produce a
//! target made of five cosines over the whole trial. Times are in seconds, rates
//! in Hz; step `n` covers `[n dt, (n+1) dt)` and a time `t` falls on step
//! `round(t / dt)`.

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Input, Sample, Target, Task, TaskKind, TaskShape, Training, TrialSource};

/// ChaCha8 streams (seeded with the run seed) of the frozen parts and held-out trials.
const SEGMENT_STREAM: u64 = 3;
const TARGET_STREAM: u64 = 4;
const VALIDATION_STREAM: u64 = 5;
const TEST_STREAM: u64 = 6;
/// Longest accepted trial, in input values (`steps * channels`).
const MAX_VALUES_PER_TRIAL: usize = 1 << 28;

/// Settings of the pattern-generation task (the `[task]` config section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PatternConfig {
    pub channels: usize,
    /// Trial length, s.
    pub duration: f64,
    /// Length of the frozen segment, s.
    pub segment_duration: f64,
    /// Poisson rate of the frozen segment, Hz.
    pub segment_rate: f64,
    /// Onsets of the segment's presentations, s.
    pub repeat_starts: Vec<f64>,
    /// Background Poisson rate on every channel, Hz, redrawn every trial.
    pub noise_rate: f64,
    /// Target series (one readout each).
    pub targets: usize,
    /// Frequencies of the cosines summed into each target, Hz.
    pub frequencies: Vec<f64>,
    pub validation_trials: usize,
    pub test_trials: usize,
}

impl Default for PatternConfig {
    fn default() -> Self {
        PatternConfig {
            channels: 100,
            duration: 2.0,
            segment_duration: 0.5,
            segment_rate: 10.0,
            repeat_starts: vec![0.0, 0.75, 1.5],
            noise_rate: 2.0,
            targets: 1,
            frequencies: vec![0.5, 1.0, 1.5, 2.0, 2.5],
            validation_trials: 4,
            test_trials: 8,
        }
    }
}

/// Step of time `t`.
fn step(t: f64, dt: f64) -> usize {
    (t / dt).round() as usize
}

impl PatternConfig {
    /// Checks every value; errors name the key as `task.<field>` and the value.
    pub fn validate(&self, dt: f64) -> Result<()> {
        if self.channels == 0 {
            bail!("task.channels = 0: must be at least 1");
        }
        if !(self.duration.is_finite() && self.duration > 0.0) {
            bail!("task.duration = {}: must be a positive number of seconds", self.duration);
        }
        if !(self.segment_duration.is_finite() && self.segment_duration > 0.0) {
            bail!("task.segment_duration = {}: must be a positive number of seconds", self.segment_duration);
        }
        for (name, rate) in [("segment_rate", self.segment_rate), ("noise_rate", self.noise_rate)] {
            if !(rate.is_finite() && rate >= 0.0 && rate * dt <= 1.0 + 1e-9) {
                bail!("task.{name} = {rate}: must be a rate in Hz with 0 <= rate * dt <= 1 (dt = {dt} s)");
            }
        }
        if self.repeat_starts.is_empty() {
            bail!("task.repeat_starts = []: give at least one onset");
        }
        for (k, s) in self.repeat_starts.iter().enumerate() {
            if !(s.is_finite() && *s >= 0.0 && s + self.segment_duration <= self.duration + 1e-9) {
                bail!(
                    "task.repeat_starts[{k}] = {s}: the segment ({} s) must fit inside the trial ({} s)",
                    self.segment_duration,
                    self.duration
                );
            }
        }
        if self.targets == 0 {
            bail!("task.targets = 0: must be at least 1");
        }
        if self.frequencies.is_empty() || self.frequencies.iter().any(|f| !f.is_finite()) {
            bail!("task.frequencies = {:?}: give at least one finite frequency", self.frequencies);
        }
        if self.validation_trials == 0 || self.test_trials == 0 {
            bail!("task.validation_trials and task.test_trials must be at least 1");
        }
        let steps = self.steps(dt);
        if steps == 0 || steps.saturating_mul(self.channels) > MAX_VALUES_PER_TRIAL {
            bail!(
                "task.duration = {}: {steps} steps of {} channels is not a usable trial",
                self.duration,
                self.channels
            );
        }
        Ok(())
    }

    pub fn steps(&self, dt: f64) -> usize {
        step(self.duration, dt)
    }

    /// Step ranges of the segment's presentations.
    pub fn repeat_windows(&self, dt: f64) -> Vec<std::ops::Range<usize>> {
        let len = step(self.segment_duration, dt);
        self.repeat_starts.iter().map(|s| step(*s, dt)..(step(*s, dt) + len).min(self.steps(dt))).collect()
    }
}

/// The task: the frozen segment and targets, and fixed held-out trials.
pub struct Pattern {
    config: PatternConfig,
    dt: f64,
    /// Frozen segment, `[segment steps, channels]`.
    segment: Vec<f32>,
    /// Targets, `[steps, targets]`.
    target: Vec<f32>,
    validation: Vec<Sample>,
    test: Vec<Sample>,
}

/// A sum of cosines with amplitudes U(0,1) and phases U(0, 2 pi), mapped onto
/// [-1, 1] (minimum to -1, maximum to 1).
fn cosine_target(frequencies: &[f64], steps: usize, dt: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let terms: Vec<(f64, f64, f64)> =
        frequencies.iter().map(|f| (*f, rng.gen::<f64>(), rng.gen_range(0.0..std::f64::consts::TAU))).collect();
    let raw: Vec<f64> = (0..steps)
        .map(|n| {
            let t = n as f64 * dt;
            terms.iter().map(|(f, a, p)| a * (std::f64::consts::TAU * f * t + p).cos()).sum()
        })
        .collect();
    let (lo, hi) = raw.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    raw.iter().map(|v| 2.0 * (v - lo) / span - 1.0).collect()
}

impl Pattern {
    pub fn new(config: PatternConfig, dt: f64, seed: u64) -> Result<Self> {
        config.validate(dt)?;
        let stream = |s: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(s);
            rng
        };
        let steps = config.steps(dt);
        let segment_steps = step(config.segment_duration, dt);
        let p = config.segment_rate * dt;
        let mut rng = stream(SEGMENT_STREAM);
        let segment =
            (0..segment_steps * config.channels).map(|_| if rng.gen::<f64>() < p { 1.0 } else { 0.0 }).collect();
        let mut rng = stream(TARGET_STREAM);
        let series: Vec<Vec<f64>> =
            (0..config.targets).map(|_| cosine_target(&config.frequencies, steps, dt, &mut rng)).collect();
        let target =
            (0..steps * config.targets).map(|i| series[i % config.targets][i / config.targets] as f32).collect();
        let mut task = Pattern { config, dt, segment, target, validation: Vec::new(), test: Vec::new() };
        task.validation = task.draw_trials(task.config.validation_trials, &mut stream(VALIDATION_STREAM));
        task.test = task.draw_trials(task.config.test_trials, &mut stream(TEST_STREAM));
        Ok(task)
    }

    pub fn config(&self) -> &PatternConfig {
        &self.config
    }

    /// Trials with fresh background noise drawn with `rng`.
    pub fn draw_trials(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<Sample> {
        let (channels, steps) = (self.config.channels, self.config.steps(self.dt));
        let p_noise = self.config.noise_rate * self.dt;
        (0..n)
            .map(|_| {
                let mut input = vec![0.0f32; steps * channels];
                for window in self.config.repeat_windows(self.dt) {
                    let len = window.len() * channels;
                    input[window.start * channels..window.start * channels + len].copy_from_slice(&self.segment[..len]);
                }
                if p_noise > 0.0 {
                    let n = input.len();
                    let mut draws = crate::model::BulkUniform::draw(rng, n);
                    for (v, spike) in input.iter_mut().zip(draws.below(p_noise, n)) {
                        if spike {
                            *v = 1.0;
                        }
                    }
                }
                Sample { input: Input::Dense(input), target: Target::Series(self.target.clone()) }
            })
            .collect()
    }

    /// Normalised distances between the output on consecutive presentations:
    /// for each pair `(k-1, k)`, the mean squared difference of the output over
    /// the two windows divided by that of the target (model.md §3; paper §4.1).
    pub fn repeat_distances(&self, output: &[f32]) -> Vec<f64> {
        let outputs = self.config.targets;
        let windows = self.config.repeat_windows(self.dt);
        let diff = |series: &[f32], a: &std::ops::Range<usize>, b: &std::ops::Range<usize>| -> f64 {
            let len = a.len().min(b.len());
            let mut sum = 0.0;
            for n in 0..len {
                for c in 0..outputs {
                    let d = series[(a.start + n) * outputs + c] as f64 - series[(b.start + n) * outputs + c] as f64;
                    sum += d * d;
                }
            }
            sum / (len * outputs).max(1) as f64
        };
        windows
            .windows(2)
            .map(|w| {
                let target = diff(&self.target, &w[0], &w[1]);
                diff(output, &w[0], &w[1]) / target.max(f64::MIN_POSITIVE)
            })
            .collect()
    }
}

impl TrialSource for Pattern {
    fn trials(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<Sample> {
        self.draw_trials(n, rng)
    }
}

impl Task for Pattern {
    fn shape(&self) -> TaskShape {
        TaskShape {
            channels: self.config.channels,
            outputs: self.config.targets,
            steps: self.config.steps(self.dt),
            kind: TaskKind::Regression,
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

    fn output_metrics(&self, output: &[f32]) -> Vec<(String, f64)> {
        self.repeat_distances(output)
            .into_iter()
            .enumerate()
            .map(|(k, d)| (format!("distance_{}_{}", k + 2, k + 1), d))
            .collect()
    }

    /// `repeat 1`, `repeat 2`, …: the presentations of the frozen segment.
    fn marked_windows(&self) -> Vec<(String, std::ops::Range<usize>)> {
        let windows = self.config.repeat_windows(self.dt);
        windows.into_iter().enumerate().map(|(k, w)| (format!("repeat {}", k + 1), w)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(noise: f64) -> Pattern {
        Pattern::new(PatternConfig { noise_rate: noise, ..PatternConfig::default() }, 1e-3, 7).unwrap()
    }

    #[test]
    fn segment_repeats_exactly_without_noise() {
        let t = task(0.0);
        let s = &t.test()[0];
        let c = 100;
        let w = t.config.repeat_windows(1e-3);
        assert_eq!(w, vec![0..500, 750..1250, 1500..2000]);
        assert_eq!(&s.input.dense().unwrap()[0..500 * c], &s.input.dense().unwrap()[750 * c..1250 * c]);
        assert_eq!(&s.input.dense().unwrap()[0..500 * c], &s.input.dense().unwrap()[1500 * c..2000 * c]);
        assert!(s.input.dense().unwrap()[500 * c..750 * c].iter().all(|v| *v == 0.0), "gaps are silent");
        let rate = s.input.dense().unwrap()[..500 * c].iter().sum::<f32>() as f64 / (c as f64 * 0.5);
        assert!((rate - 10.0).abs() < 1.5, "segment rate {rate}");
    }

    #[test]
    fn target_spans_minus_one_to_one_and_noise_is_redrawn() {
        let t = task(2.0);
        let Target::Series(y) = &t.test()[0].target else { panic!() };
        let lo = y.iter().cloned().fold(f32::INFINITY, f32::min);
        let hi = y.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        assert!((lo + 1.0).abs() < 1e-6 && (hi - 1.0).abs() < 1e-6);
        assert_ne!(t.test()[0].input.dense().unwrap(), t.test()[1].input.dense().unwrap());
        // same seed, same task
        assert_eq!(task(2.0).test()[0], t.test()[0]);
    }

    #[test]
    fn distances_are_zero_for_a_repeating_output_and_one_for_the_target() {
        let t = task(0.0);
        let Target::Series(y) = &t.test()[0].target else { panic!() };
        for d in t.repeat_distances(y) {
            assert!((d - 1.0).abs() < 1e-12);
        }
        let periodic: Vec<f32> =
            (0..2000).map(|n| if n < 750 { (n % 750) as f32 } else { ((n - 750) % 750) as f32 }).collect();
        for d in t.repeat_distances(&periodic) {
            assert!(d < 1e-12);
        }
    }

    #[test]
    fn validate_names_the_key() {
        let bad = PatternConfig { repeat_starts: vec![1.8], ..PatternConfig::default() };
        assert!(bad.validate(1e-3).unwrap_err().to_string().contains("task.repeat_starts[0]"));
        let bad = PatternConfig { noise_rate: -1.0, ..PatternConfig::default() };
        assert!(bad.validate(1e-3).unwrap_err().to_string().contains("task.noise_rate"));
    }
}
