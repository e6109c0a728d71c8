//! Learned time constants per layer: `tau = -dt / ln(decay)`, summarised as
//! quantiles and the fraction above a threshold (summary.json), so that sweeps
//! can compare them without opening a plot.

use std::collections::BTreeMap;
use std::ops::Range;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::model::{Decays, Network, ParamKind};

/// Statistics of one tensor of decays, times in ms.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TauStats {
    pub count: usize,
    /// Quantiles 0.05, 0.25, 0.5, 0.75, 0.95 (ms; `null` when infinite).
    pub quantiles_ms: BTreeMap<String, Option<f64>>,
    /// Fraction of time constants above `threshold_ms` (decay 1 counts as infinite).
    pub fraction_above: f64,
    pub threshold_ms: f64,
}

/// `tau = -dt / ln(decay)` in ms: infinite for `decay >= 1`, 0 for `decay <= 0`.
pub fn tau_ms(decay: f64, dt: f64) -> f64 {
    if decay >= 1.0 {
        f64::INFINITY
    } else if decay <= 0.0 {
        0.0
    } else {
        -dt / decay.ln() * 1000.0
    }
}

fn stats(decays: &[f32], dt: f64, threshold_ms: f64) -> TauStats {
    let mut taus: Vec<f64> = decays.iter().map(|d| tau_ms(*d as f64, dt)).collect();
    taus.sort_by(|a, b| a.total_cmp(b));
    let quantile = |q: f64| -> Option<f64> {
        let v = taus[((taus.len() - 1) as f64 * q).round() as usize];
        v.is_finite().then_some(v)
    };
    let quantiles_ms = [0.05, 0.25, 0.5, 0.75, 0.95].iter().map(|q| (format!("{q}"), quantile(*q))).collect();
    let above = taus.iter().filter(|t| **t > threshold_ms).count();
    TauStats { count: taus.len(), quantiles_ms, fraction_above: above as f64 / taus.len() as f64, threshold_ms }
}

/// Statistics of every learnable decay tensor, by checkpoint name
/// (`hidden.0.input.decay`, ..., `readout.decay`); fixed decays are left out.
pub fn tau_stats(net: &Network<f32>, threshold_ms: f64) -> BTreeMap<String, TauStats> {
    net.params()
        .into_iter()
        .filter(|(info, _)| info.kind == ParamKind::Decay)
        .map(|(info, decays)| (info.name, stats(decays, net.dt(), threshold_ms)))
        .collect()
}

/// Time constants of the first hidden layer's input synapses from one group of
/// input channels (summary.json `input_tau_*`), times in ms.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupTau {
    pub count: usize,
    /// Mean over the finite time constants (`null` when none is finite):
    /// synapses whose decay reached 1 (tau infinite) are left out of it and
    /// counted in `infinite`.
    pub mean_ms: Option<f64>,
    /// The time constant of the group's mean decay, `-dt / ln(mean decay)`
    /// (`null` when it is infinite); absent in summaries of earlier versions.
    #[serde(default)]
    pub mean_decay_tau_ms: Option<f64>,
    /// Median (`null` when infinite).
    pub median_ms: Option<f64>,
    /// Time constants that are infinite (decay >= 1).
    pub infinite: usize,
    /// Fraction above `threshold_ms` (infinite ones included).
    pub fraction_above: f64,
    pub threshold_ms: f64,
}

/// Per input-channel group (a task's [`crate::tasks::Task::input_groups`]), the
/// time constants of the per-synapse input decays of the first hidden layer;
/// empty when that layer has no per-synapse decays (all but HetSynLIF).
pub fn input_group_tau(
    net: &Network<f32>,
    groups: &[(String, Range<usize>)],
    threshold_ms: f64,
) -> BTreeMap<String, GroupTau> {
    let layer = &net.layers()[0];
    let Decays::Synapse { input, .. } = layer.decays() else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (name, channels) in groups {
        let mut taus: Vec<f64> = (0..layer.size())
            .flat_map(|j| channels.clone().map(move |i| j * layer.inputs() + i))
            .map(|k| tau_ms(input[k] as f64, net.dt()))
            .collect();
        if taus.is_empty() {
            continue;
        }
        taus.sort_by(|a, b| a.total_cmp(b));
        let finite: Vec<f64> = taus.iter().copied().filter(|t| t.is_finite()).collect();
        let median = taus[taus.len() / 2];
        let decays: Vec<f64> = (0..layer.size())
            .flat_map(|j| channels.clone().map(move |i| input[j * layer.inputs() + i] as f64))
            .collect();
        let mean_decay_tau = tau_ms(decays.iter().sum::<f64>() / decays.len() as f64, net.dt());
        out.insert(
            name.clone(),
            GroupTau {
                count: taus.len(),
                mean_ms: (!finite.is_empty()).then(|| finite.iter().sum::<f64>() / finite.len() as f64),
                median_ms: median.is_finite().then_some(median),
                mean_decay_tau_ms: mean_decay_tau.is_finite().then_some(mean_decay_tau),
                infinite: taus.len() - finite.len(),
                fraction_above: taus.iter().filter(|t| **t > threshold_ms).count() as f64 / taus.len() as f64,
                threshold_ms,
            },
        );
    }
    out
}

/// Which learnable decays a reset of long time constants looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResetScope {
    // (plain comments: `hetsyn eval --help` lists the names alone)
    // Every learnable decay tensor.
    All,
    // The first hidden layer's per-synapse input decays only
    // (`hidden.0.input.decay`, HetSynLIF): the synapses of the paper's Table 4.
    FirstInput,
}

impl ResetScope {
    /// Whether the decay tensor named `name` is in scope.
    pub fn covers(self, name: &str) -> bool {
        match self {
            ResetScope::All => true,
            ResetScope::FirstInput => name == "hidden.0.input.decay",
        }
    }
}

/// Sets every learnable decay of `net` in `scope` whose time constant exceeds
/// `threshold_ms` (decay >= 1 counts as infinite) to its value in `target`, a
/// network of the same shapes (the initial network, or one whose decays are all
/// at their distribution's mean); returns how many were reset and how many
/// learnable decays the scope holds.
pub fn reset_long_taus(
    net: &mut Network<f32>,
    target: &Network<f32>,
    threshold_ms: f64,
    scope: ResetScope,
) -> Result<(usize, usize)> {
    let initial = target;
    let dt = net.dt();
    let infos: Vec<_> = net.params().into_iter().map(|(info, _)| info).collect();
    let initial = initial.params();
    if infos.len() != initial.len() || infos.iter().zip(&initial).any(|(a, b)| *a != b.0) {
        bail!("the initial network rebuilt from the config does not have the shapes of the trained one");
    }
    let (mut reset, mut total) = (0, 0);
    for ((info, values), (_, start)) in infos.iter().zip(net.params_mut()).zip(&initial) {
        if info.kind != ParamKind::Decay || !scope.covers(&info.name) {
            continue;
        }
        total += values.len();
        for (v, s) in values.iter_mut().zip(start.iter()) {
            if tau_ms(*v as f64, dt) > threshold_ms {
                *v = *s;
                reset += 1;
            }
        }
    }
    Ok((reset, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tau_of_decay() {
        assert!((tau_ms((-0.001f64 / 0.02).exp(), 0.001) - 20.0).abs() < 1e-9);
        assert_eq!(tau_ms(1.0, 0.001), f64::INFINITY);
        assert_eq!(tau_ms(0.0, 0.001), 0.0);
    }

    #[test]
    fn quantiles_and_fraction() {
        // taus 10, 20, ..., 100 ms and one infinite
        let mut decays: Vec<f32> = (1..=10).map(|k| (-0.001f64 / (k as f64 * 0.01)).exp() as f32).collect();
        decays.push(1.0);
        let s = stats(&decays, 0.001, 75.0);
        assert_eq!(s.count, 11);
        assert!((s.quantiles_ms["0.5"].unwrap() - 60.0).abs() < 0.01);
        assert_eq!(s.quantiles_ms["0.95"], None);
        assert!((s.fraction_above - 4.0 / 11.0).abs() < 1e-12);
    }

    fn net(kind: &str) -> Network<f32> {
        let text = format!(
            "[model]\nkind = \"{kind}\"\ndt = 0.001\ntau_init = {{ dist = \"constant\", value = 0.02 }}\n\
             layers = [{{ size = 3, recurrent = true }}]\n[model.readout]\nloss = \"last\"\n[task]\nkind = \"dms\"\n"
        );
        let config = crate::config::Config::from_toml(&text, &[]).unwrap();
        crate::train::initial_network(&config, 4, 2)
    }

    fn set_tau(d: &mut f32, tau_ms: f64) {
        *d = (-1.0 / tau_ms).exp() as f32;
    }

    #[test]
    fn group_statistics_of_input_synapses() {
        let mut n = net("hetsynlif");
        let mut decays = n.decays_mut();
        let (name, input) = &mut decays[0];
        assert_eq!(name, "hidden.0.input.decay");
        // channel 0: 100, 200, 300 ms over the 3 neurons; channel 1: 1000 ms and two infinite
        for j in 0..3 {
            set_tau(&mut input[j * 4], 100.0 * (j + 1) as f64);
            input[j * 4 + 1] = if j == 0 { (-1.0f64 / 1000.0).exp() as f32 } else { 1.0 };
        }
        drop(decays);
        let groups = vec![("a".to_string(), 0..1), ("b".to_string(), 1..2), ("rest".to_string(), 2..4)];
        let g = input_group_tau(&n, &groups, 700.0);
        assert_eq!(g["a"].count, 3);
        assert!((g["a"].mean_ms.unwrap() - 200.0).abs() < 0.1, "{:?}", g["a"]);
        assert!((g["a"].median_ms.unwrap() - 200.0).abs() < 0.1);
        assert_eq!(g["a"].fraction_above, 0.0);
        let mean_decay = [100.0f64, 200.0, 300.0].iter().map(|t| (-1.0 / t).exp()).sum::<f64>() / 3.0;
        let want = -1.0 / mean_decay.ln();
        assert!((g["a"].mean_decay_tau_ms.unwrap() - want).abs() < 0.5, "{:?} vs {want}", g["a"]);
        assert!((want - 200.0).abs() > 10.0, "the tau of the mean decay is not the mean tau: {want}");
        assert_eq!((g["b"].infinite, g["b"].median_ms, g["b"].fraction_above), (2, None, 1.0));
        assert!((g["b"].mean_ms.unwrap() - 1000.0).abs() < 1.0);
        assert_eq!(g["rest"].count, 6);
        assert!(input_group_tau(&net("hetneulif"), &groups, 700.0).is_empty(), "per-neuron decays have no groups");
    }

    #[test]
    fn reset_only_long_time_constants() {
        let initial = net("hetsynlif");
        let mut learned = initial.clone();
        learned.params_mut().iter_mut().for_each(|p| p.iter_mut().for_each(|v| *v *= 0.999));
        let mut decays = learned.decays_mut();
        let names: Vec<&str> = decays.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["hidden.0.input.decay", "hidden.0.recurrent.decay", "readout.decay"]);
        set_tau(&mut decays[0].1[5], 800.0);
        decays[1].1[2] = 1.0;
        set_tau(&mut decays[2].1[0], 701.0);
        drop(decays);
        let before = learned.clone();
        let mut first_input = learned.clone();
        let (reset, total) = reset_long_taus(&mut learned, &initial, 700.0, ResetScope::All).unwrap();
        assert_eq!((reset, total), (3, 12 + 9 + 6));
        // only the first layer's input synapses: input[5] alone
        let (reset, total) = reset_long_taus(&mut first_input, &initial, 700.0, ResetScope::FirstInput).unwrap();
        assert_eq!((reset, total), (1, 12));
        for ((info, now), (_, was)) in first_input.params().iter().zip(before.params()) {
            let changed: Vec<usize> = (0..now.len()).filter(|&i| now[i].to_bits() != was[i].to_bits()).collect();
            let want: &[usize] = if info.name == "hidden.0.input.decay" { &[5] } else { &[] };
            assert_eq!(changed, want, "{}", info.name);
        }
        for (k, ((info, now), (_, was))) in learned.params().iter().zip(before.params()).enumerate() {
            for i in 0..now.len() {
                let long = info.kind == ParamKind::Decay && tau_ms(was[i] as f64, 0.001) > 700.0;
                let want = if long { initial.params()[k].1[i] } else { was[i] };
                assert_eq!(now[i].to_bits(), want.to_bits(), "{}[{i}]", info.name);
            }
        }
        assert!(reset_long_taus(&mut learned, &net("hetneulif"), 700.0, ResetScope::All).is_err(), "shapes must agree");
    }
}
