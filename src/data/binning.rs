//! Binning spike events into time steps, as the HetSyn authors do for SHD
//! (`docs/model.md` §4.1).
//!
//! With `dt = bin_ms / 1000` seconds and `T = floor(duration_s * time_scale / dt)`
//! steps (250 for the defaults), spike `k` goes to the smallest step `n` in
//! `0..T` with `time_k <= edge(n)`, `edge(n) = n * dt`; a spike later than
//! `edge(T - 1)` is dropped. So step 0 holds only time 0 (and earlier), step
//! `n >= 1` holds `(n-1)*dt < time <= n*dt`: a time exactly at `n*dt` belongs
//! to step `n`, not `n + 1`. Unit `u` goes to channel `channels - u` and unit
//! 0 is dropped (`reverse_units`, channel 0 stays silent), else to channel
//! `u`. A unit `>= channels` is dropped here; [`crate::data::load_binned`]
//! rejects such files instead.
//!
//! **Arithmetic.** `n * dt` is computed in `f64` (`n` exact, `dt` the `f64`
//! nearest `bin_ms / 1000`), then, with [`Edges::AsStored`] (the default),
//! rounded to the precision the times were stored in, and the comparison
//! `time <= edge(n)` is made there. This is what the authors' numpy code does
//! (`times <= i * dt` on a float16 array compares in float16), and it matters:
//! `float16(0.004) = 0.0040016 > 0.004`, yet numpy puts it in step 1, as here;
//! for float16 times spread uniformly over 1 s, about 4 % of the spikes sit
//! on such a rounded-up edge and would move one step otherwise. With
//! [`Edges::Exact`] the comparison is made in `f64` on the stored value (the
//! formula of model.md taken literally; 0.0040016 then goes to step 2). A
//! `time_scale != 1` multiplies each time by it first, in the same precision
//! as numpy (`float16(t * float16(alpha))` for float16 data), and scales the
//! number of steps with it (`int(1 * alpha / dt)` in the authors' code).
//!
//! The step is found without tolerances: start from `ceil(time / dt)` and
//! move by single steps while the neighbouring edge comparison says so;
//! since `edge(n)` is non-decreasing in `n` this ends at the exact smallest
//! `n`, whatever the rounding of `time / dt`. NaN times are dropped; negative
//! times go to step 0 (the reader rejects both).

use super::f16::round_to_f16;
use super::shd::{SpikeEvents, TimePrecision};
use anyhow::bail;
use serde::{Deserialize, Serialize};

/// Largest number of time steps (per sample) a binning may produce.
pub const MAX_STEPS: usize = 1 << 24;
/// Largest number of input channels.
pub const MAX_CHANNELS: usize = 1 << 24;

/// How bin edges are compared with spike times (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Edges {
    /// As the authors' numpy code: time and edge rounded to the stored
    /// precision (float16 for SHD) and compared there.
    #[default]
    AsStored,
    /// `time <= n * dt` in `f64` on the stored time value.
    Exact,
}

/// Binning settings (all configurable; the defaults are the authors').
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Binning {
    /// Bin (step) length in ms. Default 4.
    pub bin_ms: f64,
    /// Sample duration in ms; `floor(duration / bin)` steps (250 by default).
    pub duration_ms: f64,
    /// A bin holds 0/1 (true, the authors') or the spike count (false).
    pub binary: bool,
    /// Number of input channels. Default 700.
    pub channels: usize,
    /// Unit `u` -> channel `channels - u`, unit 0 dropped (true, the
    /// authors'); else unit `u` -> channel `u`.
    pub reverse_units: bool,
    /// Edge comparison rule; default [`Edges::AsStored`] (the authors').
    pub edges: Edges,
}

impl Default for Binning {
    fn default() -> Self {
        Binning {
            bin_ms: 4.0,
            duration_ms: 1000.0,
            binary: true,
            channels: 700,
            reverse_units: true,
            edges: Edges::AsStored,
        }
    }
}

impl Binning {
    /// Checks that the settings describe at least one step and one channel
    /// (and at most [`MAX_STEPS`] / [`MAX_CHANNELS`]).
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.bin_ms.is_finite() && self.bin_ms > 0.0) {
            bail!("binning.bin_ms must be a positive number of ms, got {}", self.bin_ms);
        }
        if !(self.duration_ms.is_finite() && self.duration_ms > 0.0) {
            bail!("binning.duration_ms must be a positive number of ms, got {}", self.duration_ms);
        }
        let steps = (self.duration_ms / 1000.0) / self.dt_s(); // as in `steps`
        if !(1.0..=MAX_STEPS as f64).contains(&steps.floor()) {
            bail!("binning: duration_ms / bin_ms gives {} steps, outside 1..={MAX_STEPS}", steps.floor());
        }
        if !(1..=MAX_CHANNELS).contains(&self.channels) {
            bail!("binning.channels must be in 1..={MAX_CHANNELS}, got {}", self.channels);
        }
        Ok(())
    }

    /// Bin length in seconds: the `f64` nearest `bin_ms / 1000` (4e-3 by default).
    pub fn dt_s(&self) -> f64 {
        self.bin_ms / 1000.0
    }

    /// Number of steps of a sample binned with `time_scale`:
    /// `floor(duration_s * time_scale / dt)` in `f64`, as the authors'
    /// `int(1 * time_scale / dt)`; 250 by default. 0 for a non-positive or
    /// non-finite result, at most [`MAX_STEPS`].
    pub fn steps(&self, time_scale: f64) -> usize {
        let x = (self.duration_ms / 1000.0 * time_scale) / self.dt_s();
        if x.is_finite() && x >= 1.0 {
            (x.floor() as usize).min(MAX_STEPS)
        } else {
            0
        }
    }

    /// The channel of unit `u`, or `None` if the unit is dropped (unit 0 with
    /// `reverse_units`) or out of range (`u >= channels`).
    pub fn channel_of(&self, unit: u16) -> Option<u32> {
        let u = usize::from(unit);
        if u >= self.channels || (self.reverse_units && u == 0) {
            return None;
        }
        let ch = if self.reverse_units { self.channels - u } else { u };
        u32::try_from(ch).ok()
    }
}

/// A binned sample as events: the channels active at step `t` are
/// `active[offsets[t]..offsets[t+1]]`, sorted ascending and without
/// duplicates; in counts mode (`binary = false`) `counts` holds the spike
/// count of each of them (saturating at 65535), parallel to `active`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BinnedSample {
    /// `steps + 1` offsets into `active`, starting at 0.
    pub offsets: Vec<u32>,
    /// Active channels, step after step.
    pub active: Vec<u32>,
    /// Spike counts parallel to `active` (counts mode only).
    pub counts: Option<Vec<u16>>,
}

impl BinnedSample {
    /// Number of time steps.
    pub fn steps(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// The active channels at step `t` (empty past the end).
    pub fn active_at(&self, t: usize) -> &[u32] {
        match (self.offsets.get(t), self.offsets.get(t + 1)) {
            (Some(&a), Some(&b)) => self.active.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The counts at step `t`, parallel to [`Self::active_at`] (counts mode only).
    pub fn counts_at(&self, t: usize) -> Option<&[u16]> {
        let counts = self.counts.as_ref()?;
        match (self.offsets.get(t), self.offsets.get(t + 1)) {
            (Some(&a), Some(&b)) => counts.get(a as usize..b as usize),
            _ => Some(&[]),
        }
    }

    /// Checks the structure against the expected shape: `steps + 1`
    /// non-decreasing offsets from 0 to `active.len()`, channels `< channels`
    /// and strictly increasing within each step, counts present (and `>= 1`)
    /// exactly when `!binary`.
    pub fn validate(&self, steps: usize, channels: usize, binary: bool) -> anyhow::Result<()> {
        if self.offsets.len() != steps + 1 {
            bail!("{} offsets for {steps} steps", self.offsets.len());
        }
        if self.offsets.first() != Some(&0) || self.offsets.last().map(|&o| o as usize) != Some(self.active.len()) {
            bail!("offsets do not span the {} active entries", self.active.len());
        }
        for (t, w) in self.offsets.windows(2).enumerate() {
            if w[0] > w[1] {
                bail!("offsets decrease at step {t}");
            }
            let step = &self.active[w[0] as usize..w[1] as usize];
            if step.windows(2).any(|p| p[0] >= p[1]) || step.last().is_some_and(|&c| c as usize >= channels) {
                bail!("step {t}: channels not strictly increasing below {channels}");
            }
        }
        match (&self.counts, binary) {
            (None, true) => {}
            (Some(c), false) if c.len() == self.active.len() && c.iter().all(|&x| x >= 1) => {}
            _ => bail!("counts do not match the binning mode"),
        }
        Ok(())
    }
}

/// The precision the comparison is made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precision {
    F16,
    F32,
    F64,
}

impl Precision {
    fn round(self, x: f64) -> f64 {
        match self {
            Precision::F16 => round_to_f16(x),
            Precision::F32 => f64::from(x as f32),
            Precision::F64 => x,
        }
    }
}

/// The smallest `n < edges.len()` with `t <= edges[n]`, if any; `edges` is
/// non-decreasing, `edges[n] = round(n * dt)` (see the module docs).
fn step_of(t: f64, dt: f64, edges: &[f64]) -> Option<usize> {
    let steps = edges.len();
    if t.is_nan() || steps == 0 {
        return None;
    }
    let estimate = (t / dt).ceil();
    let mut n = if estimate >= steps as f64 {
        steps
    } else if estimate > 0.0 {
        estimate as usize
    } else {
        0
    };
    while n > 0 && t <= edges[n - 1] {
        n -= 1;
    }
    while n < steps && t > edges[n] {
        n += 1;
    }
    (n < steps).then_some(n)
}

/// Bins one sample (see the module documentation for the exact rule).
/// `time_scale` is 1.0 normally; the time-warp evaluation passes `alpha`,
/// which multiplies every spike time and the number of steps.
///
/// If `times` and `units` differ in length the extra entries are ignored
/// ([`crate::data::read_spike_file`] never returns such samples).
pub fn bin_sample(events: &SpikeEvents, binning: &Binning, time_scale: f64) -> BinnedSample {
    let steps = binning.steps(time_scale);
    let dt = binning.dt_s();
    let p = match (binning.edges, events.precision) {
        (Edges::Exact, _) => Precision::F64,
        (Edges::AsStored, TimePrecision::F16) => Precision::F16,
        (Edges::AsStored, TimePrecision::F32) => Precision::F32,
    };
    let scale = (time_scale != 1.0).then(|| p.round(time_scale));
    let edges: Vec<f64> = (0..steps).map(|n| p.round(n as f64 * dt)).collect();

    // (step << 32) | channel, sorted: groups by step, channels ascending.
    let mut keys: Vec<u64> = Vec::with_capacity(events.times.len().min(events.units.len()));
    for (&t, &u) in events.times.iter().zip(&events.units) {
        let Some(ch) = binning.channel_of(u) else { continue };
        let mut t = f64::from(t);
        if let Some(s) = scale {
            t = p.round(t * s);
        }
        if let Some(n) = step_of(t, dt, &edges) {
            keys.push(((n as u64) << 32) | u64::from(ch));
        }
    }
    keys.sort_unstable();

    let mut offsets = Vec::with_capacity(steps + 1);
    offsets.push(0u32);
    let mut active = Vec::with_capacity(keys.len());
    let mut counts = (!binning.binary).then(Vec::new);
    let mut k = 0;
    for step in 0..steps as u64 {
        while k < keys.len() && keys[k] >> 32 == step {
            let key = keys[k];
            let start = k;
            while k < keys.len() && keys[k] == key {
                k += 1;
            }
            active.push(key as u32);
            if let Some(c) = counts.as_mut() {
                c.push(u16::try_from(k - start).unwrap_or(u16::MAX));
            }
        }
        offsets.push(u32::try_from(active.len()).unwrap_or(u32::MAX));
    }
    BinnedSample { offsets, active, counts }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(b: &BinnedSample) -> Vec<(usize, u32)> {
        (0..b.steps()).flat_map(|t| b.active_at(t).iter().map(move |&c| (t, c))).collect()
    }

    #[test]
    fn defaults_are_the_authors() {
        let b = Binning::default();
        assert_eq!(b.steps(1.0), 250);
        assert_eq!(b.dt_s(), 4e-3);
        assert_eq!(b.steps(0.8), 200);
        assert_eq!(b.steps(1.3), 325);
        assert_eq!(b.steps(0.0), 0);
        assert_eq!(b.steps(f64::NAN), 0);
        b.validate().unwrap();
        let parsed: Binning = toml::from_str("").unwrap();
        assert_eq!(parsed, b);
        let parsed: Binning = toml::from_str("bin_ms = 1.0\nedges = \"exact\"").unwrap();
        assert_eq!(parsed.steps(1.0), 1000);
        assert_eq!(parsed.edges, Edges::Exact);
        assert!(toml::from_str::<Binning>("bin_size = 1.0").is_err());
    }

    #[test]
    fn validate_rejects_nonsense() {
        for b in [
            Binning { bin_ms: 0.0, ..Binning::default() },
            Binning { bin_ms: f64::NAN, ..Binning::default() },
            Binning { duration_ms: -1.0, ..Binning::default() },
            Binning { duration_ms: 1.0, bin_ms: 2.0, ..Binning::default() },
            Binning { channels: 0, ..Binning::default() },
        ] {
            assert!(b.validate().is_err(), "{b:?}");
        }
    }

    #[test]
    fn channel_mapping() {
        let b = Binning::default();
        assert_eq!(b.channel_of(0), None);
        assert_eq!(b.channel_of(1), Some(699));
        assert_eq!(b.channel_of(699), Some(1));
        assert_eq!(b.channel_of(700), None);
        let b = Binning { reverse_units: false, ..Binning::default() };
        assert_eq!(b.channel_of(0), Some(0));
        assert_eq!(b.channel_of(699), Some(699));
        assert_eq!(b.channel_of(700), None);
    }

    #[test]
    fn step_search_is_exact() {
        let dt = 4e-3;
        for p in [Precision::F16, Precision::F32, Precision::F64] {
            let edges: Vec<f64> = (0..250).map(|n| p.round(n as f64 * dt)).collect();
            for n in 0..300usize {
                let e = p.round(n as f64 * dt);
                let want = (n < 250).then_some(n);
                assert_eq!(step_of(e, dt, &edges), want, "{p:?} edge {n}");
                let above = f64::from_bits(e.to_bits() + 1);
                assert_eq!(step_of(above, dt, &edges), (n + 1 < 250).then_some(n + 1), "{p:?} above edge {n}");
                let below = f64::from_bits(e.to_bits().saturating_sub(1));
                assert_eq!(step_of(below, dt, &edges), (n < 250).then_some(n), "{p:?} below edge {n}");
            }
            assert_eq!(step_of(-1.0, dt, &edges), Some(0));
            assert_eq!(step_of(f64::NAN, dt, &edges), None);
            assert_eq!(step_of(f64::INFINITY, dt, &edges), None);
            assert_eq!(step_of(0.5, dt, &[]), None);
            // Collapsed edges (float16 far from 0): the first of equal edges wins.
            let collapsed = [0.0, 8.0, 8.0, 8.0, 9.0];
            assert_eq!(step_of(8.0, 3.0, &collapsed), Some(1));
            assert_eq!(step_of(7.0, 3.0, &collapsed), Some(1));
            assert_eq!(step_of(8.5, 3.0, &collapsed), Some(4));
        }
    }

    #[test]
    fn hand_computed_bins_exact_edges() {
        // dt = 4 ms, 250 steps, exact f64 comparison on f32-stored times.
        let b = Binning { edges: Edges::Exact, ..Binning::default() };
        let ev = SpikeEvents::new(
            vec![0.0, 0.002, 0.004, 0.0041, 0.008, 0.996, 0.9961, 1.0, 0.5, 0.5, 0.5],
            vec![5, 699, 1, 0, 2, 3, 4, 7, 350, 350, 351],
        );
        // f32(0.004) = 0.0040000002 > 0.004 (f64) -> step 2; f32(0.008) > 0.008 -> step 3;
        // f32(0.996) = 0.99599999 -> step 249; 0.9961 > 0.996 = edge(249) -> dropped; 1.0 dropped.
        // f32(0.5) = 0.5 = 125 * dt in f64 -> step 125; unit 350 twice -> once.
        let got = bin_sample(&ev, &b, 1.0);
        assert_eq!(got.steps(), 250);
        assert_eq!(pairs(&got), vec![(0, 695), (1, 1), (2, 699), (3, 698), (125, 349), (125, 350), (249, 697)]);
        assert_eq!(got.counts, None);
        got.validate(250, 700, true).unwrap();
    }

    #[test]
    fn hand_computed_bins_as_stored() {
        // Same spikes compared in f32, as numpy does for float32 data: f32(0.004) <= f32(1 * 0.004).
        let b = Binning::default();
        let ev = SpikeEvents::new(vec![0.0, 0.002, 0.004, 0.008, 0.996, 0.9961], vec![5, 699, 1, 2, 3, 4]);
        let got = bin_sample(&ev, &b, 1.0);
        assert_eq!(pairs(&got), vec![(0, 695), (1, 1), (1, 699), (2, 698), (249, 697)]);

        // float16 storage: float16(0.004) = 0.0040016 <= float16(0.004) -> step 1, but
        // float16(0.0041) = 0.0041008 -> step 2; 0.9961 and 0.996 are both 0.99609375 <=
        // float16(0.996) -> step 249.
        let h = |x: f64| round_to_f16(x) as f32;
        let ev = SpikeEvents {
            times: vec![h(0.004), h(0.0041), h(0.996), h(0.9961), h(0.998)],
            units: vec![1, 2, 3, 4, 5],
            precision: TimePrecision::F16,
        };
        let got = bin_sample(&ev, &b, 1.0);
        assert_eq!(pairs(&got), vec![(1, 699), (2, 698), (249, 696), (249, 697)]);
        let exact = bin_sample(&ev, &Binning { edges: Edges::Exact, ..b.clone() }, 1.0);
        assert_eq!(pairs(&exact), vec![(2, 698), (2, 699)]);
    }

    #[test]
    fn counts_mode_and_plain_units() {
        let b = Binning {
            binary: false,
            reverse_units: false,
            channels: 8,
            bin_ms: 1.0,
            duration_ms: 3.0,
            ..Binning::default()
        };
        let ev = SpikeEvents::new(vec![0.0005, 0.001, 0.0007, 0.002, 0.0021, 0.0, 0.003], vec![3, 3, 0, 7, 8, 1, 2]);
        let got = bin_sample(&ev, &b, 1.0);
        // steps: 0 <- t=0; 1 <- (0, 1 ms]; 2 <- (1, 2 ms]; t=2.1 ms and 3 ms are past edge(2) = 2 ms.
        assert_eq!(got.steps(), 3);
        assert_eq!(got.active_at(0), &[1]);
        assert_eq!(got.active_at(1), &[0, 3]);
        assert_eq!(got.counts_at(1), Some(&[1u16, 2][..]));
        assert_eq!(got.active_at(2), &[7]);
        assert_eq!(got.active_at(3), &[] as &[u32]);
        got.validate(3, 8, false).unwrap();
        assert!(got.validate(3, 8, true).is_err());
        assert!(got.validate(4, 8, false).is_err());
        assert!(got.validate(3, 7, false).is_err());
    }

    #[test]
    fn time_scale_stretches_times_and_steps() {
        let b = Binning { edges: Edges::Exact, ..Binning::default() };
        let ev = SpikeEvents::new(vec![0.5, 0.9], vec![1, 2]);
        let got = bin_sample(&ev, &b, 1.5);
        assert_eq!(got.steps(), 375);
        assert_eq!(pairs(&got), vec![(188, 699), (338, 698)]); // 0.75 / 0.004 = 187.5, 1.35 / 0.004 = 337.5
        let got = bin_sample(&ev, &b, 0.5);
        assert_eq!(got.steps(), 125);
        assert_eq!(pairs(&got), vec![(63, 699), (113, 698)]);
    }
}
