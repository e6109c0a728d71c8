//! `scripts/sweep.sh` runs a config directory (skipping complete runs) and
//! `scripts/slurm_array.sh --dry-run` prints a job-array script whose index i
//! runs the i-th config in sorted order.

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

#[test]
fn sweep_runs_every_config_once() {
    let dir = tempfile::tempdir().unwrap();
    let configs = config_dir(dir.path());
    let out = dir.path().join("runs");
    let run = |extra: &[&str]| {
        let output = Command::new("bash")
            .arg(script("sweep.sh"))
            .arg(&configs)
            .args(["--jobs", "2", "--out"])
            .arg(&out)
            .args(extra)
            .env("HETSYN_BIN", cargo_bin("hetsyn"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let first = run(&["--", "--no-plots"]);
    for name in ["a-seed1", "b-seed2", "c-seed3"] {
        assert!(out.join(name).join("summary.json").is_file(), "{name} did not complete: {first}");
        assert!(first.contains(&format!("done {}", out.join(name).display())), "{first}");
    }
    let second = run(&["--", "--no-plots"]);
    assert_eq!(second.matches("skip ").count(), 3, "complete runs are skipped: {second}");
    // a bad argument is refused
    let bad = Command::new("bash").arg(script("sweep.sh")).arg(&configs).args(["--jobs", "zero"]).output().unwrap();
    assert!(!bad.status.success());
}

#[test]
fn slurm_array_maps_indices_to_sorted_configs() {
    let dir = tempfile::tempdir().unwrap();
    let configs = config_dir(dir.path());
    let out = dir.path().join("runs");
    let output = Command::new("bash")
        .arg(script("slurm_array.sh"))
        .arg(&configs)
        .arg("--out")
        .arg(&out)
        .args([
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
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let batch = String::from_utf8_lossy(&output.stdout).to_string();
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
    let list = fs::read_to_string(out.join("array_configs.txt")).unwrap();
    let names: Vec<String> =
        list.lines().map(|l| Path::new(l).file_name().unwrap().to_string_lossy().to_string()).collect();
    assert_eq!(names, ["a-seed1.toml", "b-seed2.toml", "c-seed3.toml"]);
    // run the generated script as array task 1: it trains b-seed2
    let path = dir.path().join("job.sh");
    fs::write(&path, &batch).unwrap();
    let status = Command::new("bash")
        .arg(&path)
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_CPUS_PER_TASK", "1")
        .status()
        .unwrap();
    assert!(status.success());
    assert!(out.join("b-seed2/summary.json").is_file());
    assert!(!out.join("a-seed1").exists() && !out.join("c-seed3").exists());
}
