//! The paper's figures, drawn from recorded results (`hetsyn figures`).
//!
//! A paper script records every finished run as rows of CSV files in a results
//! directory (one CSV per experiment: `experiment`, the config keys that vary,
//! `seed`, the figures, `commit`); the figures and a table are drawn from those
//! files alone, so they can be redrawn, and runs accumulated over several
//! sittings, without training anything again. A run already recorded is not
//! recorded twice.
//!
//! - [`shd`]: Spiking Heidelberg Digits (paper §4.3, Fig. 4, A4, A5).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::io::atomic::write_atomic;
use crate::plot::{
    category_chart, draw_spread, drawing, mean_sd, spread_axis, titled, Figure, FAMILY, LABEL_SIZE, SERIES_COLORS,
    SPREAD_CAPTION, WIDTH,
};

pub mod shd;

/// The four models in the paper's order (its legends and tables), as
/// `(model.kind, the paper's name)`.
pub const MODELS: [(&str, &str); 4] =
    [("hetsynlif", "HetSynLIF"), ("hetneulif", "HetNeuLIF"), ("homneualif", "HomNeuALIF"), ("homneulif", "HomNeuLIF")];

/// The paper's name of a `model.kind` (the kind itself if unknown).
pub fn model_label(kind: &str) -> String {
    MODELS.iter().find(|(k, _)| *k == kind).map_or_else(|| kind.to_string(), |(_, name)| name.to_string())
}

/// The models present in `kinds`, in the paper's order, unknown ones last (sorted).
pub fn in_paper_order<'a>(kinds: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut kinds: Vec<String> = kinds.into_iter().map(String::from).collect();
    kinds.sort();
    kinds.dedup();
    let rank = |k: &String| MODELS.iter().position(|(m, _)| m == k).unwrap_or(MODELS.len());
    kinds.sort_by_key(|k| rank(k));
    kinds
}

/// A results CSV: its header and rows of cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub path: PathBuf,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Reads `path`, whatever its columns.
    pub fn read_any(path: &Path) -> Result<Table> {
        let mut reader = csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
        let header = reader
            .headers()
            .with_context(|| format!("{} has no header", path.display()))?
            .iter()
            .map(String::from)
            .collect();
        let mut rows = Vec::new();
        for (k, record) in reader.records().enumerate() {
            let record = record.with_context(|| format!("{}: row {} is not valid CSV", path.display(), k + 2))?;
            rows.push(record.iter().map(String::from).collect());
        }
        Ok(Table { path: path.to_path_buf(), header, rows })
    }

    /// Reads `path`, which must have the columns `header`; an absent file is an empty table.
    pub fn read_or_new(path: &Path, header: &[&str]) -> Result<Table> {
        if !path.exists() {
            let header = header.iter().map(|h| h.to_string()).collect();
            return Ok(Table { path: path.to_path_buf(), header, rows: Vec::new() });
        }
        let table = Table::read_any(path)?;
        if table.header != header {
            bail!("{}: the columns are {}, expected {}", path.display(), table.header.join(","), header.join(","));
        }
        Ok(table)
    }

    /// Reads `path`, which must exist and have the columns `header`.
    pub fn read(path: &Path, header: &[&str]) -> Result<Table> {
        if !path.is_file() {
            bail!("no {}: record the runs first (hetsyn figures ... --record RUNS_DIR)", path.display());
        }
        Table::read_or_new(path, header)
    }

    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{} has no column {name}", self.path.display()))
    }

    /// Whether a row has these values in these columns.
    pub fn contains(&self, key: &[(&str, &str)]) -> Result<bool> {
        let columns: Vec<(usize, &str)> = key.iter().map(|(c, v)| Ok((self.column(c)?, *v))).collect::<Result<_>>()?;
        Ok(self.rows.iter().any(|row| columns.iter().all(|(c, v)| row[*c] == *v)))
    }

    /// The rows whose `experiment` cell is `experiment`.
    pub fn of_experiment(&self, experiment: &str) -> Result<Vec<&Vec<String>>> {
        let c = self.column("experiment")?;
        Ok(self.rows.iter().filter(|row| row[c] == experiment).collect())
    }

    /// Cell `column` of `row` as a number; the error names the file, column and value.
    pub fn number(&self, row: &[String], column: &str) -> Result<f64> {
        let cell = &row[self.column(column)?];
        cell.parse::<f64>()
            .with_context(|| format!("{}: column {column}: {cell:?} is not a number", self.path.display()))
    }

    /// Cell `column` of `row`.
    pub fn text<'r>(&self, row: &'r [String], column: &str) -> Result<&'r str> {
        Ok(&row[self.column(column)?])
    }

    /// Writes the table atomically.
    pub fn write(&self) -> Result<()> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(&self.header)?;
        for row in &self.rows {
            writer.write_record(row)?;
        }
        let bytes = writer.into_inner().with_context(|| format!("cannot format {}", self.path.display()))?;
        write_atomic(&self.path, &bytes)
    }
}

/// Bars per category: for each category and each bar of it, the runs' values.
pub(crate) struct GroupedBars<'a> {
    pub title: &'a str,
    pub y_label: &'a str,
    /// The bars of every category, in order (legend labels).
    pub bars: &'a [String],
    /// `(label, per bar the runs' values)` per category.
    pub categories: &'a [(String, Vec<Vec<f64>>)],
    /// The values a figure can take; error bars are clipped to it.
    pub valid: (f64, f64),
}

impl Figure for GroupedBars<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, self.title)?;
        // the legend in a column of its own, wide enough for a condition in words
        let (area, legend) = area.split_horizontally(WIDTH as i32 - 430);
        let y = spread_axis(self.categories.iter().flat_map(|(_, bars)| bars.iter().map(|v| &v[..])), Some(self.valid));
        let labels: Vec<String> = self
            .categories
            .iter()
            .map(|(label, bars)| format!("{label} (n = {})", bars.iter().map(Vec::len).max().unwrap_or(0)))
            .collect();
        let mut chart = category_chart(&area, Some(SPREAD_CAPTION), &labels, "", self.y_label, y)?;
        let m = self.bars.len().max(1) as f64;
        let width = 0.7 / m;
        for (b, label) in self.bars.iter().enumerate() {
            let color = SERIES_COLORS[b % SERIES_COLORS.len()];
            let y = 40 + 28 * b as i32;
            legend
                .draw(&Rectangle::new([(0, y - 8), (28, y + 8)], color.mix(0.45).filled()))
                .and_then(|()| legend.draw(&Text::new(label.clone(), (36, y - 8), (FAMILY, LABEL_SIZE))))
                .map_err(drawing)?;
            for (k, (_, bars)) in self.categories.iter().enumerate() {
                let Some(values) = bars.get(b).filter(|v| !v.is_empty()) else { continue };
                let x = k as f64 - 0.35 + width * (b as f64 + 0.5);
                let (mean, _) = mean_sd(values);
                chart
                    .draw_series([Rectangle::new(
                        [(x - width * 0.4, 0.0), (x + width * 0.4, mean)],
                        color.mix(0.45).filled(),
                    )])
                    .map_err(drawing)?;
                draw_spread(&mut chart, x, values, color, Some(self.valid))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::spread_bar;

    #[test]
    fn tables_keep_their_columns_and_find_recorded_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let header = ["experiment", "model", "seed", "test_accuracy"];
        let mut table = Table::read_or_new(&path, &header).unwrap();
        assert!(table.rows.is_empty());
        table.rows.push(["shd", "hetsynlif", "3", "0.5"].map(String::from).to_vec());
        table.write().unwrap();
        let table = Table::read(&path, &header).unwrap();
        assert!(table.contains(&[("model", "hetsynlif"), ("seed", "3")]).unwrap());
        assert!(!table.contains(&[("model", "hetsynlif"), ("seed", "4")]).unwrap());
        assert_eq!(table.number(&table.rows[0], "test_accuracy").unwrap(), 0.5);
        let e = table.number(&table.rows[0], "model").unwrap_err();
        assert!(format!("{e:#}").contains("column model: \"hetsynlif\" is not a number"), "{e:#}");
        // another header is refused, naming the file and both column lists
        let e = Table::read(&path, &["experiment", "model"]).unwrap_err();
        assert!(format!("{e:#}").contains("t.csv: the columns are experiment,model,seed,test_accuracy"), "{e:#}");
        assert!(Table::read(&dir.path().join("absent.csv"), &header).is_err());
    }

    #[test]
    fn models_in_the_papers_order_and_error_bars_clipped() {
        assert_eq!(
            in_paper_order(["homneulif", "x", "hetsynlif", "homneualif"]),
            ["hetsynlif", "homneualif", "homneulif", "x"]
        );
        assert_eq!(model_label("homneualif"), "HomNeuALIF");
        assert_eq!(spread_bar(95.0, 10.0, Some((0.0, 100.0))), (85.0, 100.0));
        assert_eq!(spread_bar(3.0, 10.0, Some((0.0, 100.0))), (0.0, 13.0));
        assert_eq!(spread_bar(3.0, 10.0, None), (-7.0, 13.0));
    }
}
