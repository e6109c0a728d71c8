//! `scripts/sweep.sh` runs a config directory (skipping complete runs, refusing
//! or rerunning changed ones, naming failures) and `scripts/slurm_array.sh
//! --dry-run` prints a job-array script whose index i runs the i-th config in
//! sorted order.

use std::fs;
use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::cargo_bin;

mod common;
use common::SHORT_DMS;

fn config_dir(dir: &Path) -> std::path::PathBuf {
    let configs = dir.join("grid");
    fs::create_dir_all(&configs).unwrap();
    for (name, seed) in [("b-seed2", 2), ("a-seed1", 1), ("c-seed3", 3)] {
        let text = SHORT_DMS
            .replace("seed = 3", &format!("seed = {seed}"))
            .replace("iterations = 6", "iterations = 2")
            .replace("eval_every = 3", "eval_every = 2");
        fs::write(configs.join(format!("{name}.toml")), text).unwrap();
    }
    fs::write(configs.join("notes.txt"), "not a config").unwrap();
    configs
}

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

/// Runs `scripts/sweep.sh CONFIGS --jobs 2 --out OUT ARGS` with the test binary:
/// (success, stdout, stderr).
fn sweep(configs: &Path, out: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new("bash")
        .arg(script("sweep.sh"))
        .arg(configs)
        .args(["--jobs", "2", "--out"])
        .arg(out)
        .args(args)
        .env("HETSYN_BIN", cargo_bin("hetsyn"))
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

#[test]
fn sweep_runs_every_config_once() {
    let dir = tempfile::tempdir().unwrap();
    let configs = config_dir(dir.path());
    let out = dir.path().join("runs");
    // the extra arguments are part of the config a run is compared with
    let extra = ["--", "--no-plots", "--set", "train.eval_every=1"];
    let (ok, first, err) = sweep(&configs, &out, &extra);
    assert!(ok, "{first}\n{err}");
    for name in ["a-seed1", "b-seed2", "c-seed3"] {
        assert!(out.join(name).join("summary.json").is_file(), "{name} did not complete: {first}");
        assert!(first.contains(&format!("done {}", out.join(name).display())), "{first}");
    }
    assert!(first.contains("3 done, 0 skipped, 0 failed (of 3)"), "{first}");
    let (ok, second, err) = sweep(&configs, &out, &extra);
    assert!(ok, "{second}\n{err}");
    assert_eq!(second.matches("skipped ").count(), 3, "complete runs are skipped: {second}");
    assert!(second.contains("0 done, 3 skipped, 0 failed (of 3)"), "{second}");
    // without the --set, every saved config differs: refused, nothing touched
    let metrics = fs::read(out.join("a-seed1/metrics.csv")).unwrap();
    let (ok, third, err) = sweep(&configs, &out, &["--", "--no-plots"]);
    assert!(!ok, "changed configs must fail the sweep: {third}");
    assert!(third.contains("0 done, 0 skipped, 3 failed (of 3)"), "{third}");
    assert!(err.contains("train.eval_every = 1") && err.contains("train.eval_every = 2"), "{err}");
    assert!(err.contains("--rerun-changed"), "{err}");
    assert_eq!(fs::read(out.join("a-seed1/metrics.csv")).unwrap(), metrics, "a refused run was changed");
    // a bad argument is refused
    let bad = Command::new("bash").arg(script("sweep.sh")).arg(&configs).args(["--jobs", "zero"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let help = Command::new("bash").arg(script("sweep.sh")).arg("-h").output().unwrap();
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--rerun-changed"));
}

#[test]
fn sweep_reruns_changed_configs_and_names_failures() {
    let dir = tempfile::tempdir().unwrap();
    let configs = config_dir(dir.path());
    let out = dir.path().join("runs");
    let (ok, first, err) = sweep(&configs, &out, &["--", "--no-plots"]);
    assert!(ok, "{first}\n{err}");
    // change one config, break another: the changed run is refused, the broken one fails
    let b = configs.join("b-seed2.toml");
    fs::write(&b, fs::read_to_string(&b).unwrap().replace("lr = 5e-3", "lr = 2e-3")).unwrap();
    fs::write(configs.join("d-bad.toml"), SHORT_DMS.replace("iterations = 6", "iterations = 0")).unwrap();
    let (ok, second, err) = sweep(&configs, &out, &["--", "--no-plots"]);
    assert!(!ok, "{second}");
    assert!(second.contains("0 done, 2 skipped, 2 failed (of 4)"), "{second}\n{err}");
    assert!(second.contains(&format!("failed: {}", b.display())), "{second}");
    assert!(second.contains(&format!("failed: {}", configs.join("d-bad.toml").display())), "{second}");
    assert!(err.contains("train.lr = 0.005") && err.contains("train.lr = 0.002"), "{err}");
    assert!(err.contains("train.iterations = 0"), "the failing run's own error is shown: {err}");
    // --rerun-changed moves the old run aside and trains the new config
    fs::remove_file(configs.join("d-bad.toml")).unwrap();
    let (ok, third, err) = sweep(&configs, &out, &["--rerun-changed", "--", "--no-plots"]);
    assert!(ok, "{third}\n{err}");
    assert!(third.contains("1 done, 2 skipped, 0 failed (of 3)"), "{third}\n{err}");
    let saved = fs::read_to_string(out.join("b-seed2/config.toml")).unwrap();
    assert!(saved.contains("lr = 0.002"), "{saved}");
    let aside: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("b-seed2.old-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let old = fs::read_to_string(out.join(&aside[0]).join("config.toml")).unwrap();
    assert!(old.contains("lr = 0.005") && out.join(&aside[0]).join("summary.json").is_file());
}

#[test]
fn slurm_array_maps_indices_to_sorted_configs() {
    let dir = tempfile::tempdir().unwrap();
    let configs = config_dir(dir.path());
    let out = dir.path().join("runs");
    let slurm = |args: &[&str]| {
        let output = Command::new("bash")
            .arg(script("slurm_array.sh"))
            .arg(&configs)
            .arg("--out")
            .arg(&out)
            .args(args)
            .env("HETSYN_BIN", cargo_bin("hetsyn"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let batch = slurm(&[
        "--time",
        "02:00:00",
        "--cpus",
        "1",
        "--mem",
        "2G",
        "--partition",
        "cpu",
        "--max-parallel",
        "2",
        "--dry-run",
        "--",
        "--no-plots",
        "--set",
        "train.eval_every=1",
    ]);
    for line in [
        "#SBATCH --array=0-2%2",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=2G",
        "#SBATCH --time=02:00:00",
        "#SBATCH --partition=cpu",
    ] {
        assert!(batch.contains(line), "missing `{line}` in:\n{batch}");
    }
    assert!(!batch.contains("--account"), "no account was given");
    assert!(!batch.lines().any(|l| l.trim().is_empty()), "blank line in:\n{batch}");
    // the binary named by HETSYN_BIN, and the extra train arguments
    assert!(batch.contains(&cargo_bin("hetsyn").display().to_string()), "{batch}");
    assert!(batch.contains("-- --no-plots --set train.eval_every=1"), "{batch}");
    let list = fs::read_to_string(out.join("array_configs.txt")).unwrap();
    let names: Vec<String> =
        list.lines().map(|l| Path::new(l).file_name().unwrap().to_string_lossy().to_string()).collect();
    assert_eq!(names, ["a-seed1.toml", "b-seed2.toml", "c-seed3.toml"]);
    // run the generated script as array task 1: it trains b-seed2, with the extra arguments
    let path = dir.path().join("job.sh");
    fs::write(&path, &batch).unwrap();
    let job = |task: &str| {
        Command::new("bash")
            .arg(&path)
            .env("SLURM_ARRAY_TASK_ID", task)
            .env("SLURM_CPUS_PER_TASK", "1")
            .env_remove("HETSYN_BIN")
            .output()
            .unwrap()
    };
    let first = job("1");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(out.join("b-seed2/summary.json").is_file());
    assert!(!out.join("a-seed1").exists() && !out.join("c-seed3").exists());
    let metrics = fs::read_to_string(out.join("b-seed2/metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "eval_every = 1 over 2 iterations: {metrics}");
    let again = job("1");
    assert!(again.status.success() && String::from_utf8_lossy(&again.stdout).contains("skipped"));
    // a batch script without the extra arguments refuses the run it would change
    let plain = slurm(&["--dry-run"]);
    assert!(!plain.contains("--partition") && !plain.lines().any(|l| l.trim().is_empty()), "{plain}");
    fs::write(&path, &plain).unwrap();
    let refused = job("1");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("train.eval_every"));
    // a real -h
    let help = Command::new("bash").arg(script("slurm_array.sh")).arg("-h").output().unwrap();
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--partition"));
}
