//! `metrics.csv`, one row per evaluation, and the model selection over those
//! rows. The row is one type: [`metrics_row!`] declares its fields once, and
//! the CSV header, the cells and the reading back (by `plot`, `verify` and
//! `summarize`) all come from that declaration. Numbers are written with
//! Rust's shortest round-trip formatting, so a value read back is the value
//! written.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::io::atomic::write_atomic;

/// A cell of metrics.csv: written with `Display` (empty for `None`), read back exactly.
trait Cell: Sized {
    fn text(&self) -> String;
    fn parse(text: &str) -> Option<Self>;
}

impl Cell for u64 {
    fn text(&self) -> String {
        self.to_string()
    }
    fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl Cell for f64 {
    fn text(&self) -> String {
        self.to_string()
    }
    /// An empty cell (a figure the run did not have) reads as NaN.
    fn parse(text: &str) -> Option<Self> {
        if text.is_empty() {
            Some(f64::NAN)
        } else {
            text.parse().ok()
        }
    }
}

impl Cell for Option<f64> {
    fn text(&self) -> String {
        self.map(|v| v.to_string()).unwrap_or_default()
    }
    fn parse(text: &str) -> Option<Self> {
        if text.is_empty() {
            Some(None)
        } else {
            text.parse().ok().map(Some)
        }
    }
}

/// Declares [`MetricsRow`]: its fields in column order, and from them
/// [`MetricsRow::COLUMNS`], the cells of a row and the reading of one.
macro_rules! metrics_row {
    ($($(#[doc = $doc:literal])* $field:ident: $ty:ty,)*) => {
        /// One row of `metrics.csv`. Accuracies are empty for regression tasks;
        /// the task's own figures on the test set (e.g. repeat distances) follow
        /// the fixed columns as `test_<name>`.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct MetricsRow {
            $($(#[doc = $doc])* pub $field: $ty,)*
            /// Task figures on the test set, e.g. `distance_2_1` (columns `test_distance_2_1`).
            #[serde(skip)]
            pub test_metrics: Vec<(String, f64)>,
        }

        impl MetricsRow {
            /// The fixed columns, in order.
            pub const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// The cells of the fixed columns, then of the task figures.
            fn cells(&self) -> Vec<String> {
                let mut cells = vec![$(Cell::text(&self.$field)),*];
                cells.extend(self.test_metrics.iter().map(|(_, v)| v.to_string()));
                cells
            }

            /// Sets the field of a fixed column from its cell; `Ok(false)` for
            /// a column that is not a field.
            fn set(&mut self, column: &str, text: &str) -> Result<bool> {
                match column {
                    $(stringify!($field) => {
                        self.$field = Cell::parse(text).ok_or_else(|| anyhow!("{text:?} is not a {}", describe::<$ty>()))?;
                    })*
                    _ => return Ok(false),
                }
                Ok(true)
            }
        }
    };
}

/// What a cell of type `T` must hold, in words.
fn describe<T>() -> &'static str {
    match std::any::type_name::<T>() {
        "u64" => "whole number",
        _ => "number",
    }
}

metrics_row! {
    /// Optimizer steps taken.
    step: u64,
    /// Iterations done (equals `step`).
    iteration: u64,
    /// Epochs done (dataset tasks; fractional between epoch ends).
    epoch: Option<f64>,
    /// Mean training loss (task loss plus the rate regulariser) over the
    /// iterations since the previous row: what the optimizer minimised.
    train_loss: f64,
    /// Its task-loss part: comparable with `validation_loss` and `test_loss`,
    /// which hold no regulariser.
    train_task_loss: f64,
    /// Its firing-rate regulariser part (`train.rate_reg`; 0 when off).
    train_regulariser_loss: f64,
    train_accuracy: Option<f64>,
    /// Empty without a validation set.
    validation_loss: Option<f64>,
    validation_accuracy: Option<f64>,
    test_loss: f64,
    test_accuracy: Option<f64>,
    /// Learning rate of the weights at the last step.
    lr: f64,
    /// Mean hidden firing rate over the training batches since the previous row, Hz.
    mean_rate_hz: f64,
    /// Batches skipped since the previous row for a non-finite loss or gradient.
    skipped_batches: u64,
    elapsed_s: f64,
}

impl MetricsRow {
    /// The header of a file whose rows carry these task figures.
    pub fn header(&self) -> Vec<String> {
        let mut header: Vec<String> = Self::COLUMNS.iter().map(|c| c.to_string()).collect();
        header.extend(self.test_metrics.iter().map(|(name, _)| format!("test_{name}")));
        header
    }

    /// The row as the JSON object a checkpoint logs (`metrics` metadata): the
    /// fixed fields and the `test_<name>` task figures.
    pub fn to_json(&self) -> Result<serde_json::Value> {
        let mut json = serde_json::to_value(self).context("cannot serialise a metrics row")?;
        for (name, v) in &self.test_metrics {
            json[format!("test_{name}")] = serde_json::json!(v);
        }
        Ok(json)
    }

    /// The cell of a column as metrics.csv holds it (`None` when the row has no such column).
    pub fn cell(&self, column: &str) -> Option<String> {
        self.cells().into_iter().zip(self.header()).find(|(_, h)| h == column).map(|(c, _)| c)
    }

    /// The figure of a column (`None` when the column is absent or empty).
    pub fn figure(&self, column: &str) -> Option<f64> {
        self.cell(column)?.parse().ok()
    }
}

/// The rows of metrics.csv (header first) as text records, kept whole so that
/// the file is rewritten atomically and a resumed run continues it exactly.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MetricsLog {
    records: Vec<Vec<String>>,
}

impl MetricsLog {
    pub fn push(&mut self, row: &MetricsRow) {
        if self.records.is_empty() {
            self.records.push(row.header());
        }
        self.records.push(row.cells());
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        for record in &self.records {
            writer.write_record(record)?;
        }
        let bytes = writer.into_inner().context("cannot format metrics")?;
        write_atomic(path, &bytes)
    }
}

/// Reads a `metrics.csv` back into rows; every row must have the header's
/// fields and a whole-number `step`, increasing. Errors name the file, the line
/// and the column.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>> {
    let at = || format!("metrics file {}", path.display());
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", at()))?;
    let mut reader = csv::Reader::from_reader(text.as_slice());
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header", at()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if !header.iter().any(|h| h == "step") {
        bail!("{}: no `step` column", at());
    }
    let mut rows: Vec<MetricsRow> = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.with_context(|| format!("{}: line {line} is not CSV", at()))?;
        if record.len() != header.len() {
            bail!("{}: line {line} has {} fields, the header {}", at(), record.len(), header.len());
        }
        let mut row = MetricsRow {
            train_loss: f64::NAN,
            train_task_loss: f64::NAN,
            train_regulariser_loss: f64::NAN,
            test_loss: f64::NAN,
            ..MetricsRow::default()
        };
        for (column, cell) in header.iter().zip(record.iter()) {
            let cell = cell.trim();
            let known = row.set(column, cell).with_context(|| format!("{}: line {line}, column `{column}`", at()))?;
            if !known {
                if let Some(name) = column.strip_prefix("test_") {
                    let value = f64::parse(cell)
                        .ok_or_else(|| anyhow!("{}: line {line}, column `{column}`: {cell:?} is not a number", at()))?;
                    row.test_metrics.push((name.to_string(), value));
                }
            }
        }
        if let Some(previous) = rows.last().filter(|p| row.step <= p.step) {
            bail!("{}: line {line}: step {} does not follow step {}", at(), row.step, previous.step);
        }
        rows.push(row);
    }
    if rows.is_empty() {
        bail!("{}: no rows (no evaluation yet?)", at());
    }
    Ok(rows)
}

/// Which evaluations a run reports, updated row by row: the best on the
/// validation set (the selected model), the best on the test set (optimistic;
/// reported because papers do) and the last. Serialised into `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Step of the selected model (`best.safetensors`; the last step without a validation set).
    pub best_validation_step: u64,
    /// Its epoch (dataset tasks).
    #[serde(default)]
    pub best_validation_epoch: Option<f64>,
    pub best_validation_accuracy: Option<f64>,
    #[serde(deserialize_with = "float_or_nan")]
    pub best_validation_loss: f64,
    /// Test figures of the model selected on validation.
    pub test_accuracy_at_best_validation: Option<f64>,
    #[serde(deserialize_with = "float_or_nan")]
    pub test_loss_at_best_validation: f64,
    pub test_metrics_at_best_validation: BTreeMap<String, f64>,
    /// After the last step.
    pub last_validation_accuracy: Option<f64>,
    pub last_test_accuracy: Option<f64>,
    #[serde(deserialize_with = "float_or_nan")]
    pub last_test_loss: f64,
    #[serde(deserialize_with = "float_or_nan")]
    pub last_train_loss: f64,
    pub last_test_metrics: BTreeMap<String, f64>,
    /// Best test figure over all evaluations (selected on the test set: optimistic).
    pub best_test_accuracy: Option<f64>,
    #[serde(deserialize_with = "float_or_nan")]
    pub best_test_loss: f64,
    pub best_test_step: u64,
    #[serde(default)]
    pub best_test_epoch: Option<f64>,
}

/// What one evaluation became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Improved {
    /// The new selected model (best on validation, or the last without a validation set).
    pub on_validation: bool,
    /// The new best on the test set.
    pub on_test: bool,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            best_validation_step: 0,
            best_validation_epoch: None,
            best_validation_accuracy: None,
            best_validation_loss: f64::INFINITY,
            test_accuracy_at_best_validation: None,
            test_loss_at_best_validation: f64::NAN,
            test_metrics_at_best_validation: BTreeMap::new(),
            last_validation_accuracy: None,
            last_test_accuracy: None,
            last_test_loss: f64::NAN,
            last_train_loss: f64::NAN,
            last_test_metrics: BTreeMap::new(),
            best_test_accuracy: None,
            best_test_loss: f64::INFINITY,
            best_test_step: 0,
            best_test_epoch: None,
        }
    }
}

impl Selection {
    /// Takes in one evaluation. The model is selected on validation accuracy
    /// (ties broken by lower validation loss), or on validation loss for
    /// regression; without a validation set (`validating` false) every
    /// evaluation is selected, so the last one is. The best on test is the
    /// highest test accuracy, or the lowest test loss for regression.
    pub fn record(&mut self, row: &MetricsRow, validating: bool) -> Improved {
        let validation_loss = row.validation_loss.unwrap_or(f64::NAN);
        let on_validation = !validating
            || match (row.validation_accuracy, self.best_validation_accuracy) {
                (Some(a), Some(best)) => a > best || (a == best && validation_loss < self.best_validation_loss),
                (Some(_), None) => true,
                (None, _) => validation_loss < self.best_validation_loss,
            };
        let test_metrics: BTreeMap<String, f64> = row.test_metrics.iter().cloned().collect();
        if on_validation {
            self.best_validation_accuracy = row.validation_accuracy;
            self.best_validation_loss = validation_loss;
            self.best_validation_step = row.step;
            self.best_validation_epoch = row.epoch;
            self.test_accuracy_at_best_validation = row.test_accuracy;
            self.test_loss_at_best_validation = row.test_loss;
            self.test_metrics_at_best_validation = test_metrics.clone();
        }
        let on_test = match (row.test_accuracy, self.best_test_accuracy) {
            (Some(a), Some(best)) => a > best,
            (Some(_), None) => true,
            (None, _) => row.test_loss < self.best_test_loss,
        };
        if on_test {
            self.best_test_accuracy = row.test_accuracy;
            self.best_test_loss = row.test_loss;
            self.best_test_step = row.step;
            self.best_test_epoch = row.epoch;
        }
        self.last_test_accuracy = row.test_accuracy;
        self.last_validation_accuracy = row.validation_accuracy;
        self.last_train_loss = row.train_loss;
        self.last_test_loss = row.test_loss;
        self.last_test_metrics = test_metrics;
        Improved { on_validation, on_test }
    }
}

/// Reads `null` (how JSON writes NaN and infinities) back as NaN.
pub fn float_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: u64, validation: Option<f64>, test: Option<f64>) -> MetricsRow {
        MetricsRow {
            step,
            iteration: step,
            epoch: Some(step as f64 / 4.0),
            train_loss: 0.5 / step as f64,
            validation_loss: validation.map(|a| 1.0 - a),
            validation_accuracy: validation,
            test_loss: 1.0 - test.unwrap_or(0.0),
            test_accuracy: test,
            lr: 1e-3,
            elapsed_s: 0.1,
            test_metrics: vec![("distance_2_1".into(), step as f64 * 0.25)],
            ..MetricsRow::default()
        }
    }

    #[test]
    fn rows_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let rows = [row(3, Some(0.5), Some(0.4)), row(6, None, Some(1.0 / 3.0)), row(9, Some(0.75), None)];
        let mut log = MetricsLog::default();
        rows.iter().for_each(|r| log.push(r));
        log.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("step,iteration,epoch,train_loss,"), "{text}");
        assert!(text.lines().next().unwrap().ends_with("elapsed_s,test_distance_2_1"), "{text}");
        let back = read_metrics(&path).unwrap();
        // NaN != NaN: compare the cells
        assert_eq!(
            back.iter().map(MetricsRow::cells).collect::<Vec<_>>(),
            rows.iter().map(MetricsRow::cells).collect::<Vec<_>>()
        );
        assert_eq!(back[1].figure("test_distance_2_1"), Some(1.5));
        assert_eq!(back[1].figure("validation_accuracy"), None);
    }

    #[test]
    fn bad_files_are_named_with_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        std::fs::write(&path, "step,train_loss\n1,0.5\n2,zero\n").unwrap();
        let e = format!("{:#}", read_metrics(&path).unwrap_err());
        assert!(e.contains("line 3") && e.contains("train_loss") && e.contains("metrics.csv"), "{e}");
        std::fs::write(&path, "step,train_loss\n2,0.5\n1,0.4\n").unwrap();
        assert!(format!("{:#}", read_metrics(&path).unwrap_err()).contains("does not follow"));
        std::fs::write(&path, "step,train_loss\n").unwrap();
        assert!(format!("{:#}", read_metrics(&path).unwrap_err()).contains("no rows"));
    }

    #[test]
    fn selection_takes_validation_then_lower_loss_and_keeps_test_apart() {
        let mut s = Selection::default();
        assert_eq!(s.record(&row(1, Some(0.5), Some(0.9)), true), Improved { on_validation: true, on_test: true });
        // higher test, lower validation: best on test only
        assert_eq!(s.record(&row(2, Some(0.4), Some(0.95)), true), Improved { on_validation: false, on_test: true });
        // equal validation accuracy, lower validation loss wins the tie
        let mut tie = row(3, Some(0.5), Some(0.6));
        tie.validation_loss = Some(0.1);
        assert_eq!(s.record(&tie, true), Improved { on_validation: true, on_test: false });
        assert_eq!((s.best_validation_step, s.test_accuracy_at_best_validation), (3, Some(0.6)));
        assert_eq!((s.best_test_step, s.best_test_accuracy), (2, Some(0.95)));
        assert_eq!(s.last_test_accuracy, Some(0.6));
        // without a validation set every evaluation is selected
        assert!(s.record(&row(4, None, Some(0.1)), false).on_validation);
        assert_eq!(s.best_validation_step, 4);
    }
}
