//! `hetsyn verify`: checks checkpoints against their checksums, and a run's
//! `metrics.csv` against its checkpoints, e.g. before archiving results.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::checkpoint::{self, Checkpoint};
use crate::io::checksum::Integrity;
use crate::train::metrics::{read_metrics, MetricsRow};
use crate::train::run::RunDir;

/// The verdict on one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Loads, but has no checksums (written by an earlier hetsyn).
    Unchecked,
    Failed,
}

/// One file checked and what was found.
#[derive(Debug, Clone)]
pub struct FileCheck {
    pub path: PathBuf,
    pub verdict: Verdict,
    pub detail: String,
}

impl fmt::Display for FileCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::Unchecked => "unchecked",
            Verdict::Failed => "FAILED",
        };
        write!(f, "{label:<9} {}: {}", self.path.display(), self.detail)
    }
}

/// Checks `path`: a checkpoint file; a run directory (every
/// `checkpoints/*.safetensors`, and `metrics.csv`, which must hold a row of each
/// checkpoint's step that agrees with the metrics the checkpoint logged); or a
/// directory of run directories (searched four levels deep). Errors only when
/// there is nothing to check.
pub fn verify(path: &Path) -> Result<Vec<FileCheck>> {
    if path.is_file() {
        return Ok(vec![check_checkpoint(path, None)]);
    }
    if !path.is_dir() {
        bail!("cannot verify {}: no such file or directory", path.display());
    }
    let runs = run_dirs(path)?;
    if runs.is_empty() {
        bail!("cannot verify {}: no run directory (one holding checkpoints/) in or below it", path.display());
    }
    let mut out = Vec::new();
    for run in runs {
        out.extend(check_run(&run)?);
    }
    Ok(out)
}

/// `dir` if it holds `checkpoints/`, else the run directories below it, sorted.
fn run_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(RunDir::find(dir, RunDir::has_checkpoints)?.into_iter().map(|run| run.path().to_path_buf()).collect())
}

/// The checks of one run directory: `metrics.csv`, then each checkpoint.
fn check_run(run: &Path) -> Result<Vec<FileCheck>> {
    let dir = RunDir::at(run).checkpoints();
    let entries = std::fs::read_dir(&dir).with_context(|| format!("cannot read directory {}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    let metrics_path = RunDir::at(run).metrics();
    let metrics = MetricsTable::read(&metrics_path);
    let mut out = vec![match &metrics {
        Ok(table) => FileCheck {
            path: metrics_path,
            verdict: Verdict::Ok,
            detail: format!("{} rows, steps {} to {}", table.rows.len(), table.first_step(), table.last_step()),
        },
        Err(e) => FileCheck { path: metrics_path, verdict: Verdict::Failed, detail: format!("{e:#}") },
    }];
    if files.is_empty() {
        out.push(FileCheck {
            path: dir,
            verdict: Verdict::Failed,
            detail: "no checkpoint (*.safetensors) in it".into(),
        });
    }
    out.extend(files.iter().map(|file| check_checkpoint(file, metrics.as_ref().ok())));
    Ok(out)
}

/// Loads (and so verifies) one checkpoint and, given its run's metrics, checks
/// that they hold the checkpoint's step.
fn check_checkpoint(path: &Path, metrics: Option<&MetricsTable>) -> FileCheck {
    let failed = |detail: String| FileCheck { path: path.to_path_buf(), verdict: Verdict::Failed, detail };
    let ckpt = match checkpoint::load(path) {
        Ok(ckpt) => ckpt,
        Err(e) => return failed(format!("{e:#}")),
    };
    let mut detail = format!("step {}, epoch {}", ckpt.step, ckpt.epoch);
    if let Some(table) = metrics {
        if let Err(e) = table.check(&ckpt) {
            return failed(format!("{detail}: {e:#}"));
        }
        detail.push_str(", in metrics.csv");
    }
    let verdict = match ckpt.integrity {
        Integrity::Verified => {
            detail.push_str(", checksums match");
            Verdict::Ok
        }
        Integrity::Unchecked => {
            detail.push_str(", no checksums (written by an earlier hetsyn): contents not verified");
            Verdict::Unchecked
        }
    };
    FileCheck { path: path.to_path_buf(), verdict, detail }
}

/// The rows of a run's `metrics.csv` ([`read_metrics`]).
struct MetricsTable {
    rows: Vec<MetricsRow>,
}

impl MetricsTable {
    fn read(path: &Path) -> Result<MetricsTable> {
        Ok(MetricsTable { rows: read_metrics(path)? })
    }

    fn first_step(&self) -> u64 {
        self.rows.first().map_or(0, |r| r.step)
    }

    fn last_step(&self) -> u64 {
        self.rows.last().map_or(0, |r| r.step)
    }

    /// The checkpoint's step has a row, which agrees with the metrics the
    /// checkpoint logged when those are of that step.
    fn check(&self, ckpt: &Checkpoint) -> Result<()> {
        let step = ckpt.step;
        let row = self.rows.iter().find(|r| r.step == step).ok_or_else(|| {
            anyhow!(
                "metrics.csv has no row of step {step} (last: {}); an unfinished run? continue it with `hetsyn train --resume`",
                self.last_step()
            )
        })?;
        let logged = match ckpt.metrics.as_object() {
            Some(logged) if logged.get("step").and_then(serde_json::Value::as_u64) == Some(step) => logged,
            _ => return Ok(()),
        };
        for column in row.header() {
            if let (Some(value), Some(cell)) = (logged.get(&column), row.cell(&column)) {
                if !same_value(value, &cell) {
                    bail!("metrics.csv row of step {step} has {column} = {cell:?}, the checkpoint logged {value}");
                }
            }
        }
        Ok(())
    }
}

/// Whether a logged JSON value and a CSV cell are the same figure (JSON null:
/// an empty cell or a non-finite number).
fn same_value(value: &serde_json::Value, cell: &str) -> bool {
    let number = cell.parse::<f64>().ok();
    match value {
        serde_json::Value::Null => cell.is_empty() || number.is_some_and(|x| !x.is_finite()),
        serde_json::Value::Number(n) => number.is_some() && n.as_f64() == number,
        serde_json::Value::String(s) => s == cell,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_values_and_cells() {
        use serde_json::json;
        assert!(same_value(&json!(0.1), "0.1"));
        assert!(same_value(&json!(6), "6"));
        assert!(!same_value(&json!(0.1), "0.10000000000000002"));
        assert!(!same_value(&json!(0.1), ""));
        assert!(same_value(&json!(null), ""));
        assert!(same_value(&json!(null), "NaN"));
        assert!(!same_value(&json!(null), "0"));
    }

    #[test]
    fn metrics_tables_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let cases = [
            ("step,loss\n3,0.5\n6,0.25\n", None),
            ("loss\n0.5\n", Some("no `step` column")),
            ("step,loss\n3,0.5\n3,0.25\n", Some("line 3: step 3 does not follow step 3")),
            ("step,loss\nx,0.5\n", Some("line 2, column `step`: \"x\"")),
            ("step,loss\n3\n", Some("line 2")),
            ("step,loss\n", Some("no rows")),
        ];
        for (text, want) in cases {
            std::fs::write(&path, text).unwrap();
            match (MetricsTable::read(&path), want) {
                (Ok(table), None) => assert_eq!((table.first_step(), table.last_step()), (3, 6)),
                (Err(e), Some(want)) => assert!(format!("{e:#}").contains(want), "{text:?}: {e:#}"),
                (result, _) => panic!("{text:?}: {:?}", result.map(|t| t.rows.len())),
            }
        }
    }
}
