//! Results kept as data (`hetsyn record`): one row per complete run, identified
//! by its varying keys and seed; rows accumulate over calls and are never
//! rewritten; `--prune` leaves out of a config directory what is recorded.

use std::fs;
use std::path::Path;

mod common;
use common::{hetsyn, SHORT_DMS};

fn train(config: &Path, out: &Path, sets: &[&str]) {
    let mut cmd = hetsyn();
    cmd.args(["-q", "train", "--no-plots", "--config"]).arg(config).arg("--out").arg(out);
    for s in sets {
        cmd.args(["--set", s]);
    }
    cmd.assert().success();
}

fn record(runs: &Path, to: &Path, curves: &Path) -> String {
    let out = hetsyn()
        .args(["-q", "record"])
        .arg(runs)
        .args(["--experiment", "short", "--keys", "model.kind", "--figures"])
        .args(["test_accuracy_at_best_validation,iterations_to_95,no_such_figure", "--curves", "test_accuracy", "--to"])
        .arg(to)
        .arg("--curves-to")
        .arg(curves)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn runs_accumulate_and_recorded_configs_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("short.toml");
    fs::write(&config, SHORT_DMS).unwrap();
    let runs = dir.path().join("runs");
    train(&config, &runs.join("a"), &[]);
    train(&config, &runs.join("b"), &["model.kind=\"homneulif\""]);
    let (to, curves) = (dir.path().join("results/short.csv"), dir.path().join("results/curves/short.csv"));
    assert!(record(&runs, &to, &curves).starts_with("2 runs recorded"));
    let text = fs::read_to_string(&to).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "experiment,model.kind,seed,test_accuracy_at_best_validation,iterations_to_95,no_such_figure,wall_s,commit"
    );
    assert_eq!(lines.len(), 3);
    // sorted by key values: hetsynlif before homneulif; a figure the run lacks is empty
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(runs.join("a/summary.json")).unwrap()).unwrap();
    let cells: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(&cells[..3], ["short", "hetsynlif", "3"]);
    assert_eq!(cells[3], summary["test_accuracy_at_best_validation"].as_f64().unwrap().to_string());
    assert_eq!(cells[5], "");
    assert_eq!(cells[7], summary["git_commit"].as_str().unwrap());
    assert!(lines[2].starts_with("short,homneulif,3,"));
    // curves: one row per evaluation (iterations 3 and 6) per run
    let curve = fs::read_to_string(&curves).unwrap();
    assert_eq!(curve.lines().next().unwrap(), "experiment,model.kind,seed,step,test_accuracy");
    assert_eq!(curve.lines().filter(|l| l.starts_with("short,hetsynlif,3,")).count(), 2);

    // a second sitting: a new seed is added, the recorded rows stay as they were
    // (even where a run directory now holds other figures)
    train(&config, &dir.path().join("more/c"), &["seed=4"]);
    fs::rename(runs.join("a"), dir.path().join("more/a")).unwrap();
    assert!(record(&dir.path().join("more"), &to, &curves).starts_with("1 runs recorded in"));
    let again = fs::read_to_string(&to).unwrap();
    assert_eq!(again.lines().count(), 4);
    assert!(again.contains(lines[1]) && again.contains(lines[2]));

    // --prune: of a grid over kind x seed, the recorded configs go
    let grid = dir.path().join("grid");
    hetsyn()
        .args(["-q", "grid"])
        .arg(&config)
        .args(["--vary", "model.kind=hetsynlif,homneulif,hetneulif", "--vary", "seed=3,4", "--out"])
        .arg(&grid)
        .assert()
        .success();
    let out = hetsyn()
        .args(["-q", "record"])
        .arg(&grid)
        .args(["--prune", "--experiment", "short", "--keys", "model.kind", "--figures"])
        .args(["test_accuracy_at_best_validation,iterations_to_95,no_such_figure", "--to"])
        .arg(&to)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("3 configs already recorded in {} removed, 3 left", to.display())
    );
    let mut left: Vec<String> =
        fs::read_dir(&grid).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left.len(), 3);
    assert!(
        left.iter().all(|f| f.contains("hetneulif") || f.contains("homneulif") && f.contains("seed-4")),
        "{left:?}"
    );

    // a file of other columns is refused, naming both
    let err = hetsyn()
        .args(["-q", "record"])
        .arg(&runs)
        .args(["--experiment", "short", "--keys", "seed2", "--figures", "x", "--to"])
        .arg(&to)
        .output()
        .unwrap();
    assert!(!err.status.success());
    let msg = String::from_utf8_lossy(&err.stderr);
    assert!(msg.contains("has the columns") && msg.contains("short.csv"), "{msg}");
}

/// `--traces-to`: the readout traces of the runs that `hetsyn plot` drew,
/// one row per readout and step, each run once.
#[test]
fn readout_traces_of_plotted_runs_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pattern.toml");
    let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/pattern.toml"))
        .unwrap()
        .replace("iterations = 1000", "iterations = 4")
        .replace("eval_every = 50", "eval_every = 2")
        .replace("duration = 2.0 ", "duration = 0.2 ")
        .replace("repeat_starts = [0.0, 0.75, 1.5]", "repeat_starts = [0.0, 0.1]")
        .replace("segment_duration = 0.5", "segment_duration = 0.05")
        .replace("size = 100", "size = 10");
    fs::write(&config, text).unwrap();
    let runs = dir.path().join("runs");
    train(&config, &runs.join("a"), &[]);
    train(&config, &runs.join("b"), &["model.kind=\"homneulif\""]);
    let plotted = hetsyn().arg("-q").arg("plot").arg(runs.join("a")).output().unwrap();
    assert!(plotted.status.success(), "{}", String::from_utf8_lossy(&plotted.stderr));
    let (to, traces) = (dir.path().join("results/p.csv"), dir.path().join("results/traces/p.csv"));
    let call = || {
        let out = hetsyn()
            .args(["-q", "record"])
            .arg(&runs)
            .args(["--experiment", "p", "--keys", "model.kind", "--figures", "best_test_loss", "--to"])
            .arg(&to)
            .arg("--traces-to")
            .arg(&traces)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = call();
    assert!(first.contains("traces of 1 runs recorded"), "{first}");
    let kept = fs::read_to_string(&traces).unwrap();
    let lines: Vec<&str> = kept.lines().collect();
    assert_eq!(lines[0], "experiment,model.kind,seed,output,time_ms,target,y,window");
    // 0.2 s of 1 ms steps, one readout; only the plotted run (a, hetsynlif, seed 0)
    assert_eq!(lines.len(), 1 + 200);
    assert!(lines[1].starts_with("p,hetsynlif,0,0,1,") && lines[1].ends_with(",repeat 1"), "{}", lines[1]);
    assert!(lines[200].starts_with("p,hetsynlif,0,0,200,"), "{}", lines[200]);
    let plotted_csv = fs::read_to_string(runs.join("a/plots/output.csv")).unwrap();
    for (kept, plotted) in lines[1..].iter().zip(plotted_csv.lines().skip(1)) {
        assert_eq!(kept.strip_prefix("p,hetsynlif,0,").unwrap(), plotted);
    }
    // again: nothing added, nothing rewritten
    let second = call();
    assert!(second.contains("traces of 0 runs recorded") && second.contains("1 recorded before"), "{second}");
    assert_eq!(fs::read_to_string(&traces).unwrap(), kept);
}
