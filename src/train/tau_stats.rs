//! Learned time constants per layer: `tau = -dt / ln(decay)`, summarised as
//! quantiles and the fraction above a threshold (summary.json), so that sweeps
//! can compare them without opening a plot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Decays, Network};

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
    let mut out = BTreeMap::new();
    let last = net.layers.len() - 1;
    for (l, layer) in net.layers.iter().enumerate() {
        let prefix = if l == last { "readout".to_string() } else { format!("hidden.{l}.input") };
        match &layer.decays {
            Decays::Synapse { input, recurrent, .. } => {
                out.insert(format!("{prefix}.decay"), stats(input, net.dt, threshold_ms));
                if let Some(q) = recurrent {
                    out.insert(format!("hidden.{l}.recurrent.decay"), stats(q, net.dt, threshold_ms));
                }
            }
            Decays::Neuron { rho, learnable: true } => {
                out.insert(format!("{prefix}.decay"), stats(rho, net.dt, threshold_ms));
            }
            Decays::Neuron { .. } => {}
        }
    }
    out
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
}
