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
