//! Hostile inputs: mutated and truncated configs and checkpoints never make
//! hetsyn panic, and every refusal names the file; a non-finite loss stops a run
//! (or skips the batch when configured).

use std::fs;

use assert_cmd::Command;
use proptest::prelude::*;

use hetsyn::config::Config;

const CONFIG: &str = include_str!("../configs/dms.toml");

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Byte flips and truncations of a valid config give a config or an error, never a panic.
    #[test]
    fn mutated_configs_never_panic(cut in 0usize..CONFIG.len(), flips in proptest::collection::vec((0usize..CONFIG.len(), any::<u8>()), 0..4)) {
        let mut bytes = CONFIG.as_bytes()[..cut.max(1)].to_vec();
        for (at, b) in flips {
            if at < bytes.len() {
                bytes[at] = b;
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = Config::from_toml(&text, &[]);
    }

    /// Random `--set` assignments give a config or an error, never a panic.
    #[test]
    fn random_overrides_never_panic(key in "[a-z_.0-9]{0,24}", value in "[ -~]{0,16}") {
        let _ = Config::from_toml(CONFIG, &[format!("{key}={value}")]);
    }
}

#[test]
fn mutated_checkpoints_are_refused_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let config = CONFIG
        .replace("size = 100", "size = 8")
        .replace("iterations = 1000", "iterations = 2")
        .replace("eval_every = 25", "eval_every = 2");
    let config = config
        .replace("validation_trials = 256", "validation_trials = 4")
        .replace("test_trials = 512", "test_trials = 4");
    fs::write(dir.path().join("c.toml"), config).unwrap();
    Command::cargo_bin("hetsyn")
        .unwrap()
        .args(["-q", "train", "--no-progress", "--config", "c.toml", "--out", "run"])
        .current_dir(dir.path())
        .assert()
        .success();
    let good = fs::read(dir.path().join("run/checkpoints/last.safetensors")).unwrap();
    let path = dir.path().join("mutant.safetensors");
    let mut state: u64 = 7;
    let mut refused = 0;
    for k in 0..200 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut bytes = good.clone();
        if k % 2 == 0 {
            bytes.truncate((state >> 20) as usize % good.len());
        } else {
            for j in 0..4 {
                let at = ((state >> (8 * j)) as usize) % bytes.len();
                bytes[at] ^= 1 << (j % 8);
            }
        }
        fs::write(&path, &bytes).unwrap();
        let result = std::panic::catch_unwind(|| hetsyn::checkpoint::load(&path));
        match result {
            Err(_) => panic!("checkpoint::load panicked on mutant {k}"),
            Ok(Err(e)) => {
                refused += 1;
                assert!(format!("{e:#}").contains("mutant.safetensors"), "error does not name the file: {e:#}");
            }
            Ok(Ok(_)) => {} // counted below
        }
    }
    // a flip inside tensor data leaves finite floats, but not their checksum
    assert_eq!(refused, 200, "only {refused} of 200 mutants refused");
}

#[test]
fn non_finite_loss_stops_or_skips() {
    let dir = tempfile::tempdir().unwrap();
    let config = CONFIG
        .replace("size = 100", "size = 8")
        .replace("validation_trials = 256", "validation_trials = 4")
        .replace("test_trials = 512", "test_trials = 4");
    fs::write(dir.path().join("c.toml"), config).unwrap();
    // weights of 1e38 overflow the potentials
    let out = Command::cargo_bin("hetsyn")
        .unwrap()
        .args(["train", "--no-progress", "--config", "c.toml", "--out", "stop", "--set", "model.weight_scale=1e38"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("iteration 0") && err.contains("not finite") || err.contains("NaN"), "{err}");
    Command::cargo_bin("hetsyn")
        .unwrap()
        .args([
            "-q",
            "train",
            "--no-progress",
            "--config",
            "c.toml",
            "--out",
            "skip",
            "--set",
            "model.weight_scale=1e38",
        ])
        .args(["--set", "train.on_nonfinite=skip", "--set", "train.iterations=4", "--set", "train.eval_every=4"])
        .current_dir(dir.path())
        .assert()
        .success();
    let metrics = fs::read_to_string(dir.path().join("skip/metrics.csv")).unwrap();
    let header: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = metrics.lines().nth(1).unwrap().split(',').collect();
    let skipped = header.iter().position(|h| *h == "skipped_batches").unwrap();
    assert_eq!(row[skipped], "4", "{metrics}");
}
