//! Shared by the end-to-end tests: the `hetsyn` binary and a short DMS config.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub fn hetsyn() -> Command {
    Command::cargo_bin("hetsyn").expect("binary builds")
}

/// A short DMS run: small trial sets, few iterations.
pub const SHORT_DMS: &str = r#"
name = "short"
seed = 3
[model]
kind = "hetsynlif"
dt = 0.005
surrogate = "triangle"
tau_reset = 0.04
tau_init = { dist = "normal", mean = 0.04, std = 0.004 }
layers = [{ size = 20, recurrent = true }]
[model.readout]
loss = "last"
[task]
kind = "dms"
delay = 0.2
validation_trials = 32
test_trials = 48
[train]
iterations = 6
batch_size = 8
lr = 5e-3
decay_lr = 5e-3
eval_every = 3
rate_reg = 0.1
"#;

/// A file of `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A short SHD-task run on the separable fixture set (`sep_*.h5`, 4 classes,
/// 0.2 s samples), holding out speaker 3 for validation.
pub const SEPARABLE: &str = r#"
name = "sep"
seed = 0
[model]
kind = "hetsynlif"
dt = 0.001
surrogate = "multi_gaussian"
tau_reset = 0.02
tau_init = { dist = "uniform", low = 0.005, high = 0.02 }
dropout = 0.2
layers = [{ size = 16, recurrent = true }]
[model.readout]
loss = "softmax_sum"
skip_steps = 5
[task]
kind = "shd"
train_file = "sep_train.h5"
test_file = "sep_test.h5"
validation = "speaker"
validation_speakers = [3]
[task.binning]
duration_ms = 200.0
[train]
epochs = 6
batch_size = 8
optimizer = "adamw"
lr = 1e-2
decay_lr = 1e-2
weight_decay = 4e-3
schedule = { kind = "warmup_cosine", span_epochs = 4 }
"#;

/// Writes the separable-set config with its data and cache directories.
pub fn separable_config(dir: &Path) -> PathBuf {
    let path = dir.join("sep.toml");
    let text = SEPARABLE.replace(
        "[task]\n",
        &format!(
            "[task]\ndata_dir = {:?}\ncache_dir = {:?}\n",
            fixture("").display().to_string(),
            dir.join("cache").display().to_string()
        ),
    );
    fs::write(&path, text).unwrap();
    path
}

/// A run's metrics.csv without the elapsed-time column (a resumed run's rows
/// equal an uninterrupted run's but for it).
pub fn metrics_without_elapsed(run: &Path) -> Vec<String> {
    let text = fs::read_to_string(run.join("metrics.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let elapsed = header.iter().position(|h| *h == "elapsed_s").unwrap();
    text.lines()
        .map(|l| l.split(',').enumerate().filter(|(i, _)| *i != elapsed).map(|(_, v)| v).collect::<Vec<_>>().join(","))
        .collect()
}
