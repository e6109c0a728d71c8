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
    assert!(err.contains("train.eval_every: 1 vs 2"), "{err}");
    assert!(third.contains("train.eval_every: 1 vs 2") && third.contains("--rerun-changed"), "{third}");
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
    assert!(second.contains("train.lr: 0.005 vs 0.002"), "the run's value first: {second}");
    assert!(err.contains("train.iterations = 0"), "the failing run's own error is shown: {err}");
    assert!(second.contains("train.iterations = 0: must be at least 1"), "the tally names the reason: {second}");
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
        "#SBATCH --partition=\"cpu\"",
    ] {
        assert!(batch.contains(line), "missing `{line}` in:\n{batch}");
    }
    assert!(!batch.contains("--account"), "no account was given");
    assert!(!batch.lines().any(|l| l.trim().is_empty()), "blank line in:\n{batch}");
    // the binary named by HETSYN_BIN, and the extra train arguments
    assert!(batch.contains(&cargo_bin("hetsyn").display().to_string()), "{batch}");
    assert!(batch.contains("-- --no-plots --set train.eval_every=1"), "{batch}");
    // the configs, in sorted order, in the script itself
    let list: Vec<&str> =
        batch.lines().skip_while(|l| *l != "configs=(").skip(1).take_while(|l| *l != ")").map(str::trim).collect();
    let names: Vec<String> = ["a-seed1", "b-seed2", "c-seed3"]
        .iter()
        .map(|n| configs.join(format!("{n}.toml")).display().to_string())
        .collect();
    assert_eq!(list, names, "{batch}");
    // run the generated script as array task 1: it trains b-seed2, with the extra arguments
    let path = dir.path().join("job.sh");
    fs::write(&path, &batch).unwrap();
    fs::create_dir_all(&out).unwrap();
    let job = |task: &str| {
        Command::new("bash")
            .arg(&path)
            .env("SLURM_ARRAY_TASK_ID", task)
            .env("SLURM_ARRAY_JOB_ID", "7")
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
    // each task's events in the array's status file
    let status = fs::read_to_string(out.join("slurm-7.status")).unwrap();
    let b = configs.join("b-seed2.toml").display().to_string();
    let run = out.join("b-seed2").display().to_string();
    let events: Vec<&str> = status.lines().collect();
    assert_eq!(
        events,
        [
            format!("1\trunning\t{b}\t{run}\t"),
            format!("1\tdone\t{b}\t{run}\t"),
            format!("1\trunning\t{b}\t{run}\t"),
            format!("1\tskipped\t{b}\t{run}\tfinished"),
        ]
    );
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

/// Runs `scripts/slurm_array.sh ARGS` with the test binary, in `cwd`.
fn slurm_array(args: &[&std::ffi::OsStr], cwd: &Path) -> std::process::Output {
    Command::new("bash")
        .arg(script("slurm_array.sh"))
        .args(args)
        .current_dir(cwd)
        .env("HETSYN_BIN", cargo_bin("hetsyn"))
        .output()
        .unwrap()
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

#[test]
fn slurm_array_dry_run_writes_nothing_and_checks_its_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let configs = config_dir(dir.path());
    let out = dir.path().join("runs");
    let dry = slurm_array(&[configs.as_os_str(), os("--out"), out.as_os_str(), os("--dry-run")], dir.path());
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    assert!(!out.exists(), "--dry-run created {}", out.display());
    // --max-parallel 0 would mean no limit to sbatch
    let zero = slurm_array(&[configs.as_os_str(), os("--max-parallel"), os("0"), os("--dry-run")], dir.path());
    assert_eq!(zero.status.code(), Some(2), "{}", String::from_utf8_lossy(&zero.stdout));
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--max-parallel"));
    // the default --out is in the repository, wherever the command is run from
    let default = slurm_array(&[configs.as_os_str(), os("--dry-run")], dir.path());
    let batch = String::from_utf8_lossy(&default.stdout);
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/grid");
    assert!(batch.contains(&format!("\"{}/slurm-%A_%a.out\"", results.display())), "{batch}");
    assert!(!dir.path().join("results").exists());
}

#[test]
fn slurm_array_quotes_paths_and_escapes_percent_signs() {
    let dir = tempfile::tempdir().unwrap();
    let spaced = dir.path().join("my configs");
    fs::rename(config_dir(dir.path()), &spaced).unwrap();
    let out = dir.path().join("runs 50%");
    let dry = slurm_array(&[spaced.as_os_str(), os("--out"), out.as_os_str(), os("--dry-run")], dir.path());
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    let batch = String::from_utf8_lossy(&dry.stdout);
    // sbatch splits an unquoted directive at the space and reads % as a file name pattern
    let escaped = out.display().to_string().replace('%', "%%");
    assert!(batch.contains(&format!("#SBATCH --output=\"{escaped}/slurm-%A_%a.out\"")), "{batch}");
    assert!(batch.contains("#SBATCH --job-name=\"hetsyn-my configs\""), "{batch}");
}

#[test]
fn slurm_array_refuses_a_broken_config_before_submitting() {
    let dir = tempfile::tempdir().unwrap();
    let configs = config_dir(dir.path());
    fs::write(configs.join("d-bad.toml"), SHORT_DMS.replace("iterations = 6", "iterations = 0")).unwrap();
    let out = dir.path().join("runs");
    let args = [configs.as_os_str(), os("--out"), out.as_os_str(), os("--dry-run"), os("--"), os("--no-plots")];
    let refused = slurm_array(&args, dir.path());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("d-bad.toml") && err.contains("train.iterations"), "{err}");
    assert!(refused.stdout.is_empty(), "a batch script was printed: {}", String::from_utf8_lossy(&refused.stdout));
    // the extra arguments are part of the check
    fs::remove_file(configs.join("d-bad.toml")).unwrap();
    let args = [configs.as_os_str(), os("--dry-run"), os("--"), os("--set"), os("train.lr=-1")];
    let refused = slurm_array(&args, dir.path());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("a-seed1.toml") && err.contains("train.lr"), "{err}");
}

#[test]
fn an_array_runs_the_configs_of_its_own_submission() {
    let dir = tempfile::tempdir().unwrap();
    let configs = config_dir(dir.path());
    fs::remove_file(configs.join("a-seed1.toml")).unwrap();
    let out = dir.path().join("runs");
    let args = [configs.as_os_str(), os("--out"), out.as_os_str(), os("--dry-run"), os("--"), os("--no-plots")];
    let first = slurm_array(&args, dir.path());
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    // a config is added and the directory submitted again before the first array runs
    fs::write(configs.join("a-seed1.toml"), fs::read_to_string(configs.join("b-seed2.toml")).unwrap()).unwrap();
    let second = slurm_array(&args, dir.path());
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    // task 0 of the first array trains b-seed2, its first config
    let path = dir.path().join("first.sh");
    fs::write(&path, &first.stdout).unwrap();
    fs::create_dir_all(&out).unwrap();
    let task = Command::new("bash")
        .arg(&path)
        .env("SLURM_ARRAY_TASK_ID", "0")
        .env("SLURM_ARRAY_JOB_ID", "41")
        .env("SLURM_CPUS_PER_TASK", "1")
        .output()
        .unwrap();
    assert!(task.status.success(), "{}", String::from_utf8_lossy(&task.stderr));
    assert!(out.join("b-seed2/summary.json").is_file());
    assert!(!out.join("a-seed1").exists(), "the first array ran a config of the second");
}

/// `--rerun-changed` of a run that another process is training is refused:
/// nothing is moved, and the training ends in its own directory.
#[test]
fn a_run_in_training_is_not_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let configs = config_dir(dir.path());
    for name in ["a-seed1", "c-seed3"] {
        fs::remove_file(configs.join(format!("{name}.toml"))).unwrap();
    }
    let out = dir.path().join("runs");
    let run = out.join("b-seed2");
    let config = configs.join("b-seed2.toml");
    let mut training = Command::new(cargo_bin("hetsyn"))
        .args(["-q", "train", "--no-plots", "--threads", "1", "--set", "train.iterations=100000", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !(run.join(".lock").is_file() && run.join("config.toml").is_file()) {
        assert!(started.elapsed().as_secs() < 60, "the training did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // the config in the directory differs from the one in training (iterations)
    let (ok, tally, err) = sweep(&configs, &out, &["--rerun-changed", "--", "--no-plots"]);
    let _ = Command::new("kill").arg(training.id().to_string()).status();
    let stopped = training.wait().unwrap();
    assert!(!ok, "{tally}\n{err}");
    assert!(tally.contains("0 done, 0 skipped, 1 failed (of 1)"), "{tally}\n{err}");
    assert!(err.contains("in use by process"), "{err}");
    let names: Vec<String> =
        fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert_eq!(names, ["b-seed2"], "a run in training was moved");
    // stopped by SIGTERM, the run holds its resumable checkpoint and its own config
    assert_eq!(stopped.code(), Some(143));
    assert!(run.join("checkpoints/last.safetensors").is_file());
    assert!(fs::read_to_string(run.join("config.toml")).unwrap().contains("iterations = 100000"));
}
