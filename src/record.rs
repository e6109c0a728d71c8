//! Results kept as data: one CSV row per run of an experiment (the config keys
//! that vary, the seed, the figures a report needs, wall time, git commit),
//! appended to a file that is committed (`docs/results/<experiment>.csv`), and
//! the learning curves a figure needs (`docs/results/curves/<experiment>.csv`).
//! A run is identified by its key values and seed: a row already recorded is
//! kept, so runs accumulate over several sittings and machines, and a sweep
//! can leave out the configs already recorded ([`prune_configs`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::io::atomic::write_atomic;
use crate::summarize::{collect, compare_keys, flat_config, Run};
use crate::train::metrics::read_metrics;

/// What [`record`] writes (`hetsyn record`'s options).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RecordOptions {
    /// The experiment's name: the first column of every row.
    #[arg(long)]
    pub experiment: String,
    /// Config keys that vary between the runs, comma separated; with the seed they identify a run.
    #[arg(long, value_delimiter = ',')]
    pub keys: Vec<String>,
    /// summary.json figures to record, comma separated (dotted names as `hetsyn summarize` reads them).
    #[arg(long, value_delimiter = ',')]
    pub figures: Vec<String>,
    /// metrics.csv columns to record per evaluation as learning curves, comma separated.
    #[arg(long, value_delimiter = ',', requires = "curves_to")]
    pub curves: Vec<String>,
}

/// A run's identity in a results file: its key values, then its seed.
type Identity = Vec<String>;

fn header(options: &RecordOptions) -> Vec<String> {
    let mut h = vec!["experiment".to_string()];
    h.extend(options.keys.iter().cloned());
    h.push("seed".into());
    h.extend(options.figures.iter().cloned());
    h.extend(["wall_s", "commit"].map(String::from));
    h
}

fn curve_header(options: &RecordOptions) -> Vec<String> {
    let mut h = vec!["experiment".to_string()];
    h.extend(options.keys.iter().cloned());
    h.extend(["seed", "step"].map(String::from));
    h.extend(options.curves.iter().cloned());
    h
}

/// The rows of a results CSV (empty when the file does not exist); its header
/// must be `expected`.
fn read_rows(path: &Path, expected: &[String]) -> Result<Vec<Vec<String>>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let found: Vec<String> = reader
        .headers()
        .with_context(|| format!("{} has no header", path.display()))?
        .iter()
        .map(String::from)
        .collect();
    if found != expected {
        bail!(
            "{} has the columns {} but this experiment records {}: record into another file, or move it aside",
            path.display(),
            found.join(","),
            expected.join(",")
        );
    }
    reader
        .records()
        .map(|r| {
            Ok(r.with_context(|| format!("{} is not valid CSV", path.display()))?.iter().map(String::from).collect())
        })
        .collect()
}

fn write_rows(path: &Path, header: &[String], rows: &[Vec<String>]) -> Result<()> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(header)?;
    for row in rows {
        writer.write_record(row)?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_atomic(path, &writer.into_inner().context("cannot format the CSV")?)
}

/// The identity of a run of `config` (flattened, dotted keys); errors name a
/// key the config does not have.
fn identity(config: &BTreeMap<String, String>, keys: &[String], what: &str) -> Result<Identity> {
    let mut id = Vec::with_capacity(keys.len() + 1);
    for key in keys.iter().chain(std::iter::once(&"seed".to_string())) {
        let value = config.get(key).with_context(|| format!("{what} has no config key `{key}`"))?;
        id.push(value.clone());
    }
    Ok(id)
}

/// The identity of a recorded row (its key columns and seed).
fn row_identity(row: &[String], keys: usize) -> Identity {
    row[1..keys + 2].to_vec()
}

/// What [`record`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Rows added to the results file.
    pub added: usize,
    /// Complete runs whose key values and seed were already recorded.
    pub kept: usize,
}

/// Appends to `to` a row for every complete run under `runs` whose key values
/// and seed are not recorded there yet (and, with curves, its learning curve
/// to `curves_to`); rows are sorted by key values and seed. Numbers are written
/// as Rust prints an `f64` (shortest round-trip); a figure the run lacks is an
/// empty cell.
pub fn record(runs: &Path, to: &Path, curves_to: Option<&Path>, options: &RecordOptions) -> Result<Recorded> {
    if options.experiment.is_empty() || options.experiment.contains(',') {
        bail!("--experiment must be a name without commas, not `{}`", options.experiment);
    }
    if !options.curves.is_empty() && curves_to.is_none() {
        bail!("--curves needs --curves-to FILE");
    }
    let header = header(options);
    let mut rows = read_rows(to, &header)?;
    let known: BTreeSet<Identity> = rows.iter().map(|r| row_identity(r, options.keys.len())).collect();
    let curve_header = curve_header(options);
    let mut curve_rows = match curves_to {
        Some(path) if !options.curves.is_empty() => read_rows(path, &curve_header)?,
        _ => Vec::new(),
    };
    let all = collect(runs)?;
    let (mut added, mut kept) = (0, 0);
    let mut seen = BTreeSet::new();
    for run in &all {
        let id = identity(&run.config, &options.keys, &format!("run {}", run.dir.display()))?;
        if known.contains(&id) {
            kept += 1;
            continue;
        }
        if !seen.insert(id.clone()) {
            bail!(
                "two runs under {} have the same key values and seed {:?}: record them separately",
                runs.display(),
                id
            );
        }
        rows.push(row_of(run, &id, options));
        if !options.curves.is_empty() {
            curve_rows.extend(curve_of(run, &id, options)?);
        }
        added += 1;
    }
    let order = |a: &Vec<String>, b: &Vec<String>| compare_keys(&a[1..], &b[1..]);
    rows.sort_by(order);
    write_rows(to, &header, &rows)?;
    if let (Some(path), false) = (curves_to, options.curves.is_empty()) {
        curve_rows.sort_by(order);
        write_rows(path, &curve_header, &curve_rows)?;
    }
    Ok(Recorded { added, kept })
}

fn number(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite()).map(|v| v.to_string()).unwrap_or_default()
}

fn row_of(run: &Run, id: &Identity, options: &RecordOptions) -> Vec<String> {
    let mut row = vec![options.experiment.clone()];
    row.extend(id.iter().cloned());
    row.extend(options.figures.iter().map(|f| number(run.figures.get(f).copied())));
    row.push(number(run.figures.get("elapsed_s").copied()));
    row.push(run.git_commit.clone().unwrap_or_default());
    row
}

fn curve_of(run: &Run, id: &Identity, options: &RecordOptions) -> Result<Vec<Vec<String>>> {
    let path = run.dir.join("metrics.csv");
    let metrics = read_metrics(&path)?;
    let mut rows = Vec::with_capacity(metrics.len());
    for m in metrics {
        let json = m.to_json()?;
        let mut row = vec![options.experiment.clone()];
        row.extend(id.iter().cloned());
        row.push(m.step.to_string());
        for column in &options.curves {
            let value = json.get(column).with_context(|| format!("{} has no column `{column}`", path.display()))?;
            row.push(number(value.as_f64()));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The header of a CSV file.
fn csv_header(path: &Path) -> Result<Vec<String>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let header = reader.headers().with_context(|| format!("{} has no header", path.display()))?;
    Ok(header.iter().map(String::from).collect())
}

/// Appends to `to` the readout traces of the first test trial (the run's
/// `plots/output.csv`, written by `hetsyn plot`) of every complete run under
/// `runs` that has them and whose key values and seed have no trace in `to`
/// yet, each row prefixed with the experiment, key values and seed; `added`
/// counts runs. Runs without `plots/output.csv` are left out.
pub fn record_traces(runs: &Path, to: &Path, options: &RecordOptions) -> Result<Recorded> {
    let mut prefix = vec!["experiment".to_string()];
    prefix.extend(options.keys.iter().cloned());
    prefix.push("seed".into());
    let mut header = if to.exists() { Some(csv_header(to)?) } else { None };
    let mut rows = match &header {
        Some(h) => read_rows(to, h)?,
        None => Vec::new(),
    };
    let known: BTreeSet<Identity> = rows.iter().map(|r| row_identity(r, options.keys.len())).collect();
    let (mut added, mut kept) = (0, 0);
    for run in &collect(runs)? {
        let path = run.dir.join("plots/output.csv");
        if !path.is_file() {
            continue;
        }
        let id = identity(&run.config, &options.keys, &format!("run {}", run.dir.display()))?;
        if known.contains(&id) {
            kept += 1;
            continue;
        }
        let columns = csv_header(&path)?;
        let full: Vec<String> = prefix.iter().chain(&columns).cloned().collect();
        match &header {
            Some(h) if *h != full => bail!(
                "{} has the columns {} but {} gives {}: record into another file, or move it aside",
                to.display(),
                h.join(","),
                path.display(),
                full.join(",")
            ),
            Some(_) => {}
            None => header = Some(full),
        }
        for trace in read_rows(&path, &columns)? {
            let mut row = vec![options.experiment.clone()];
            row.extend(id.iter().cloned());
            row.extend(trace);
            rows.push(row);
        }
        added += 1;
    }
    if let Some(header) = header {
        // by run, then readout and time (numerically)
        rows.sort_by(|a, b| compare_keys(&a[1..], &b[1..]));
        write_rows(to, &header, &rows)?;
    }
    Ok(Recorded { added, kept })
}

/// Removes from `configs` (a directory of `*.toml`, as `hetsyn grid` writes)
/// every config whose key values and seed already have a row in `recorded`;
/// returns how many were removed and how many remain.
pub fn prune_configs(configs: &Path, recorded: &Path, options: &RecordOptions) -> Result<(usize, usize)> {
    let rows = read_rows(recorded, &header(options))?;
    let known: BTreeSet<Identity> = rows.iter().map(|r| row_identity(r, options.keys.len())).collect();
    let mut files: Vec<_> = std::fs::read_dir(configs)
        .with_context(|| format!("cannot read directory {}", configs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let (mut removed, mut left) = (0, 0);
    for file in files {
        let config = Config::load(&file, &[])?;
        let id = identity(&flat_config(&config)?, &options.keys, &format!("config {}", file.display()))?;
        if known.contains(&id) {
            std::fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
            removed += 1;
        } else {
            left += 1;
        }
    }
    Ok((removed, left))
}
