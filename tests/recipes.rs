//! The shipped experiment recipes: `configs/dms.toml` and `configs/pattern.toml`
//! hold the settings of the HetSyn paper (docs/reproduction.md gives the table),
//! and the DMS recipe lets a network of 5 recurrent HetSynLIF neurons learn.

use std::fs;
use std::path::Path;

use hetsyn::config::{Config, ModelKind, OptimizerKind, ScheduleConfig, TaskConfig, TauInit};
use hetsyn::model::{LossKind, Surrogate};

mod common;
use common::hetsyn;

fn shipped(name: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs").join(name);
    Config::load(&path, &[]).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

/// Paper §4.2: 30 channels (10 left cue, 10 right cue, 10 noise), cue 1 at 50-150 ms,
/// 800 ms delay, cue 2 for 100 ms (trial ends at 1050 ms), cues 40 Hz, noise 10 Hz,
/// dt 5 ms; 100 recurrent hidden neurons, 2 readouts, cross-entropy at the last step;
/// taus N(40, 4) ms, tau_J 40 ms; ALIF tau_a 800 ms, a 0.15; Adam 5e-3 x 0.8 every 100
/// iterations, 1000 iterations of 32; rate regulariser toward 10 Hz.
#[test]
fn dms_recipe_is_the_papers() {
    let c = shipped("dms.toml");
    let m = &c.model;
    assert_eq!(m.kind, ModelKind::Hetsynlif);
    assert_eq!(m.dt, 0.005);
    assert_eq!(m.layers.iter().map(|l| (l.size, l.recurrent)).collect::<Vec<_>>(), [(100, true)]);
    assert_eq!((m.threshold, m.tau_reset, m.surrogate), (1.0, 0.04, Surrogate::Triangle));
    assert_eq!(m.tau_init, TauInit::Normal { mean: 0.04, std: 0.004 });
    assert_eq!((m.adaptation_tau, m.adaptation_strength), (0.8, 0.15), "the paper's DMS adaptation");
    assert_eq!(m.readout.loss, LossKind::Last);
    let TaskConfig::Dms(d) = &c.task else { panic!("dms.toml is not a dms task") };
    assert_eq!(d.channels_per_group, 10);
    assert_eq!((d.cue_start, d.cue_duration, d.delay), (0.05, 0.1, 0.8));
    assert!((d.cue_start + d.cue_duration + d.delay + d.cue_duration - 1.05).abs() < 1e-12, "trial ends at 1050 ms");
    assert_eq!((d.cue_rate, d.noise_rate), (40.0, 10.0));
    let t = &c.train;
    assert_eq!((t.optimizer, t.lr, t.decay_lr), (OptimizerKind::Adam, 5e-3, 5e-3));
    assert_eq!(t.schedule, ScheduleConfig::Step { every: 100, gamma: 0.8 });
    assert_eq!((t.iterations, t.batch_size), (1000, 32));
    assert_eq!((t.rate_reg, t.rate_target_hz), (0.01, 10.0), "a regulariser weight that lets 5 neurons learn");
}

/// Paper §4.1: 100 channels, a frozen 500 ms 10 Hz segment at 0, 750 and 1500 ms over
/// 2 Hz background noise redrawn each trial; 2000 ms at dt 1 ms; 100 -> 100 -> 1; a sum
/// of 5 cosines 0.5-2.5 Hz; MSE + 0.01 x the rate regulariser; taus N(20, 5) ms (HomNeu:
/// 20); ALIF tau_a 500 ms, a 0.01; Adam 1e-3 x 0.8 every 100 iterations, 1000 of batch 1.
#[test]
fn pattern_recipe_is_the_papers() {
    let c = shipped("pattern.toml");
    let m = &c.model;
    assert_eq!(m.kind, ModelKind::Hetsynlif);
    assert_eq!(m.dt, 0.001);
    assert_eq!(m.layers.iter().map(|l| (l.size, l.recurrent)).collect::<Vec<_>>(), [(100, false)]);
    assert_eq!(m.tau_init, TauInit::Normal { mean: 0.02, std: 0.005 });
    assert_eq!(m.tau_init.mean(), 0.02, "HomNeu models use the mean, 20 ms");
    assert_eq!((m.adaptation_tau, m.adaptation_strength), (0.5, 0.01));
    assert_eq!(m.readout.loss, LossKind::Mse);
    let TaskConfig::Pattern(p) = &c.task else { panic!("pattern.toml is not a pattern task") };
    assert_eq!((p.channels, p.duration, p.segment_duration, p.segment_rate), (100, 2.0, 0.5, 10.0));
    assert_eq!(p.repeat_starts, [0.0, 0.75, 1.5]);
    assert_eq!((p.noise_rate, p.targets), (2.0, 1));
    assert_eq!(p.frequencies, [0.5, 1.0, 1.5, 2.0, 2.5]);
    let t = &c.train;
    assert_eq!((t.optimizer, t.lr, t.decay_lr), (OptimizerKind::Adam, 1e-3, 1e-3));
    assert_eq!(t.schedule, ScheduleConfig::Step { every: 100, gamma: 0.8 });
    assert_eq!((t.iterations, t.batch_size), (1000, 1));
    assert_eq!(t.rate_reg, 0.01);
}

/// Paper App. D (SHD): HomNeuALIF adapts with tau_a = 100 ms and a = 0.05. Every SHD
/// recipe holds them (scripts/paper/shd.sh varies model.kind over configs/shd.toml and
/// configs/shd_authors.toml), not the default adaptation of 500 ms and 0.01.
#[test]
fn shd_recipes_have_the_papers_adaptation() {
    let c = shipped("shd_homneualif.toml");
    assert_eq!(c.model.kind, ModelKind::Homneualif);
    assert_eq!((c.model.adaptation_tau, c.model.adaptation_strength), (0.1, 0.05), "the paper's SHD adaptation");
    for name in ["shd.toml", "shd_authors.toml", "shd_hetneulif.toml", "shd_homneulif.toml"] {
        let m = shipped(name).model;
        assert_eq!((m.adaptation_tau, m.adaptation_strength), (0.1, 0.05), "{name}");
    }
}

fn test_accuracy_at_best_validation(run: &Path) -> f64 {
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    summary["test_accuracy_at_best_validation"].as_f64().unwrap()
}

/// A regression guard for the recipe: with the shipped configs/dms.toml at its full
/// length (1000 iterations) and a hidden layer of 5 recurrent HetSynLIF neurons (the
/// paper's smallest network that solves DMS), two seeds reach at least 90 % test
/// accuracy, selected on validation (measured: 100 % and 98–100 % under two kernel
/// versions that differ in rounding). With the regulariser weight of 1.0 that the
/// recipe once had, the same runs stay at chance (50 % and 53 %). A shorter budget
/// is not used: at 300 iterations one seed in five or six stays at chance with the
/// right recipe too, and which one depends on last-bit rounding.
#[test]
fn five_recurrent_hetsyn_neurons_learn_dms() {
    let dir = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/dms.toml");
    for seed in ["0", "1"] {
        let run = dir.path().join(format!("seed{seed}"));
        hetsyn()
            .args(["-q", "train", "--no-plots", "--no-progress", "--config"])
            .arg(&config)
            .args(["--seed", seed, "--set", "model.layers.0.size=5"])
            .arg("--out")
            .arg(&run)
            .assert()
            .success();
        let accuracy = test_accuracy_at_best_validation(&run);
        assert!(accuracy >= 0.9, "seed {seed}: test accuracy {accuracy} at best validation");
    }
}
