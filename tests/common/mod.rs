//! Shared by the end-to-end tests: the `hetsyn` binary and a short DMS config.
#![allow(dead_code)]

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
