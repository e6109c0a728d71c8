//! `hetsyn summarize`: every run's `summary.json` and resolved `config.toml`
//! (and, when present, the `hetsyn eval` CSV of its reported checkpoint, see
//! [`RunDir::reported_eval_csv`]) under a results directory, as one CSV (a row per run), a
//! markdown table of mean ± sd per group of config values, and a plot
//! comparing the groups. Runs without a validation set are named below the table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::io::atomic::write_atomic;
use crate::plot::{mean_sd, Series};
use crate::train::evaluate::EvalRow;
use crate::train::run::{RunDir, Saved};
use crate::train::RunSummary;

/// Figures of the table (those a run has), in this order.
const TABLE_METRICS: [&str; 6] = [
    "test_accuracy_at_best_validation",
    "last_test_accuracy",
    "best_test_accuracy",
    "test_loss_at_best_validation",
    "last_test_loss",
    "best_validation_loss",
];

/// What the markdown table shows (`hetsyn summarize`'s options).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TableOptions {
    /// Columns of the table, comma separated (summary.csv column names; default: the test and validation figures).
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Add a column: the fraction of each group's runs whose first table figure is >= this (e.g. 0.9).
    #[arg(long, value_name = "VALUE")]
    pub success_at: Option<f64>,
    /// Also draw summary_lines.{png,svg}: figures against this --by key (numeric), one line per value of the other --by keys.
    #[arg(long, value_name = "KEY")]
    pub plot_x: Option<String>,
    /// The figures of that plot, comma separated (default: the first table figure).
    #[arg(long, value_delimiter = ',', value_name = "FIGURES", requires = "plot_x")]
    pub plot_y: Vec<String>,
}

/// Numeric cells of an eval CSV as `eval.<condition>.<column>` figures.
fn eval_figures(path: &Path, out: &mut BTreeMap<String, f64>) -> Result<()> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let headers = reader.headers().with_context(|| format!("{} has no header", path.display()))?.clone();
    let condition = headers
        .iter()
        .position(|h| h == "condition")
        .with_context(|| format!("{} has no `condition` column", path.display()))?;
    for record in reader.records() {
        let record = record.with_context(|| format!("{} is not valid CSV", path.display()))?;
        for (column, value) in headers.iter().zip(record.iter()) {
            if !EvalRow::is_figure(column) {
                continue;
            }
            if let Ok(v) = value.parse::<f64>() {
                out.insert(format!("eval.{}.{column}", &record[condition]), v);
            }
        }
    }
    Ok(())
}

/// One run: its directory, flattened config (dotted keys) and numeric summary figures.
#[derive(Debug, Clone)]
pub struct Run {
    pub dir: PathBuf,
    pub config: BTreeMap<String, String>,
    pub figures: BTreeMap<String, f64>,
    /// summary.json's `selected_on` (`last`: no validation set).
    pub selected_on: Option<String>,
    /// The eval CSV whose figures are `eval.*`, relative to the run directory.
    pub eval_csv: Option<String>,
    /// summary.json's `git_commit`: the build that finished the run.
    pub git_commit: Option<String>,
}

/// A config's resolved keys, dotted, with its values as config.toml spells them
/// (the keys a run directory's config.toml gives [`Run::config`]).
pub fn flat_config(config: &crate::config::Config) -> Result<BTreeMap<String, String>> {
    let table: toml::Table = config.to_toml()?.parse().context("cannot read the resolved config back")?;
    Ok(config_keys(table))
}

/// The dotted keys of a config table ([`crate::config::flatten_toml`]), strings
/// as their text.
fn config_keys(table: toml::Table) -> BTreeMap<String, String> {
    crate::config::flatten_toml(&toml::Value::Table(table))
        .into_iter()
        .map(|(k, v)| match v {
            toml::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect()
}

fn flatten_json(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, f64>) {
    match value {
        serde_json::Value::Object(map) if !prefix.starts_with("tau_") => {
            for (k, v) in map {
                flatten_json(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v, out);
            }
        }
        serde_json::Value::Number(n) => {
            if let Some(v) = n.as_f64() {
                out.insert(prefix.to_string(), v);
            }
        }
        _ => {}
    }
}

/// Every run below `root` (directories holding both `summary.json` and `config.toml`).
pub fn collect(root: &Path) -> Result<Vec<Run>> {
    RunDir::find(root, RunDir::is_finished)?.iter().map(read_run).collect()
}

/// A finished run's config keys and figures: summary.json read as a
/// [`RunSummary`], its numbers under dotted keys (`test_metrics_at_best_validation.distance_2_1`,
/// `input_tau_last.cue.mean_ms`; the `tau_*` statistics left out), and the
/// figures of its reported checkpoint's eval CSV.
fn read_run(run_dir: &RunDir) -> Result<Run> {
    let (summary, config) = (run_dir.summary(), run_dir.config());
    let text = std::fs::read_to_string(&config).with_context(|| format!("cannot read {}", config.display()))?;
    let table: toml::Table = text.parse().with_context(|| format!("{} is not valid TOML", config.display()))?;
    let text = std::fs::read_to_string(&summary).with_context(|| format!("cannot read {}", summary.display()))?;
    let typed: RunSummary =
        serde_json::from_str(&text).with_context(|| format!("{} is not a valid summary", summary.display()))?;
    let mut figures = BTreeMap::new();
    flatten_json("", &serde_json::to_value(&typed)?, &mut figures);
    let dir = run_dir.path().to_path_buf();
    let mut eval_csv = None;
    if let Some(eval) = run_dir.reported_eval_csv() {
        eval_figures(&eval, &mut figures)?;
        eval_csv = eval.strip_prefix(&dir).ok().map(|p| p.display().to_string());
    }
    Ok(Run {
        dir,
        config: config_keys(table),
        figures,
        selected_on: Some(typed.selected_on),
        eval_csv,
        git_commit: Some(typed.provenance.git_commit),
    })
}

/// Group keys in order: numbers by value (`5 < 20 < 100`), other values as text.
pub(crate) fn compare_keys(a: &[String], b: &[String]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.total_cmp(&y),
            _ => x.cmp(y),
        };
        if order.is_ne() {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// Writes `<root>/summary.csv`, `<root>/summary.md` and `<root>/summary_groups.{png,svg}`
/// (and `summary_lines.{png,svg}` with [`TableOptions::plot_x`]); returns the markdown table.
pub fn summarize(root: &Path, by: &[String], table: &TableOptions) -> Result<String> {
    let runs = collect(root)?;
    if runs.is_empty() {
        bail!("no runs under {} (a run directory holds summary.json and config.toml)", root.display());
    }
    for key in by {
        if !runs.iter().any(|r| r.config.contains_key(key)) {
            bail!("--by {key}: no run's config has this key (e.g. model.kind, seed, model.layers.0.size)");
        }
    }
    // CSV: a row per run
    let figure_keys: Vec<String> = {
        let mut keys: Vec<String> = runs.iter().flat_map(|r| r.figures.keys().cloned()).collect();
        keys.sort();
        keys.dedup();
        keys
    };
    let mut csv = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["run_dir".to_string()];
    header.extend(by.iter().cloned());
    header.extend(figure_keys.iter().cloned());
    csv.write_record(&header)?;
    for run in &runs {
        let mut row = vec![run.dir.display().to_string()];
        row.extend(by.iter().map(|k| run.config.get(k).cloned().unwrap_or_default()));
        row.extend(figure_keys.iter().map(|k| run.figures.get(k).map(|v| v.to_string()).unwrap_or_default()));
        csv.write_record(&row)?;
    }
    write_atomic(&root.join("summary.csv"), &csv.into_inner().context("cannot format the CSV")?)?;

    // groups
    let mut groups: BTreeMap<Vec<String>, Vec<&Run>> = BTreeMap::new();
    for run in &runs {
        groups
            .entry(by.iter().map(|k| run.config.get(k).cloned().unwrap_or_else(|| "-".into())).collect())
            .or_default()
            .push(run);
    }
    for m in table.metrics.iter().chain(&table.plot_y) {
        if !figure_keys.contains(m) {
            bail!("--metrics {m}: no run has this figure (the columns of {})", root.join("summary.csv").display());
        }
    }
    let metrics: Vec<String> = if table.metrics.is_empty() {
        TABLE_METRICS
            .iter()
            .map(|m| m.to_string())
            .chain(figure_keys.iter().filter(|k| k.starts_with("test_metrics_at_best_validation.")).cloned())
            .filter(|m| runs.iter().any(|r| r.figures.contains_key(m)))
            .collect()
    } else {
        table.metrics.clone()
    };
    let success = match (table.success_at, metrics.first()) {
        (Some(at), Some(first)) => Some((at, first.clone())),
        (Some(at), None) => bail!("--success-at {at}: the table has no figure to compare"),
        (None, _) => None,
    };
    let mut md = String::new();
    let group_header = if by.is_empty() { vec!["all".to_string()] } else { by.to_vec() };
    let success_header = success.as_ref().map(|(at, m)| format!(" success ({m} ≥ {at}) |")).unwrap_or_default();
    md += &format!("| {} | runs |{success_header} {} |\n", group_header.join(" | "), metrics.join(" | "));
    md += &format!("|{}\n", "---|".repeat(group_header.len() + 1 + usize::from(success.is_some()) + metrics.len()));
    let mut plotted = Vec::new();
    let mut groups: Vec<(Vec<String>, Vec<&Run>)> = groups.into_iter().collect();
    groups.sort_by(|a, b| compare_keys(&a.0, &b.0));
    for (key, members) in &groups {
        let cells: Vec<String> = metrics
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let values: Vec<f64> = members.iter().filter_map(|r| r.figures.get(m).copied()).collect();
                if values.is_empty() {
                    return "-".to_string();
                }
                let (mean, sd) = mean_sd(&values);
                if i == 0 {
                    plotted.push((if by.is_empty() { "all".to_string() } else { key.join(", ") }, values));
                }
                format!("{mean:.4} ± {sd:.4}")
            })
            .collect();
        let label = if by.is_empty() { vec!["all".to_string()] } else { key.clone() };
        let success_cell = success
            .as_ref()
            .map(|(at, m)| {
                let hits = members.iter().filter(|r| r.figures.get(m).is_some_and(|v| v >= at)).count();
                format!(" {:.2} ({hits}/{}) |", hits as f64 / members.len() as f64, members.len())
            })
            .unwrap_or_default();
        md += &format!("| {} | {} |{success_cell} {} |\n", label.join(" | "), members.len(), cells.join(" | "));
    }
    if let Some(x_key) = &table.plot_x {
        let y = if table.plot_y.is_empty() { metrics[..1].to_vec() } else { table.plot_y.clone() };
        plot_lines(root, by, x_key, &y, &groups)?;
    }
    md += &selection_notes(&runs);
    write_atomic(&root.join("summary.md"), md.as_bytes())?;
    if let Some(metric) = metrics.first() {
        let title = format!("{} by {}", metric, if by.is_empty() { "all".to_string() } else { by.join(", ") });
        crate::plot::plot_groups(root, "summary_groups", &title, metric, &plotted)?;
    }
    Ok(md)
}

/// Lines below the table for runs without a validation set, and for `eval.*`
/// figures taken from another checkpoint than `best.safetensors`; empty otherwise.
fn selection_notes(runs: &[Run]) -> String {
    let mut notes = String::new();
    let last = runs.iter().filter(|r| r.selected_on.as_deref() == Some("last")).count();
    if last > 0 {
        notes += &format!(
            "\n{last} of {} runs have no validation set (selected_on = last): their *_at_best_validation figures are those of the last evaluation; best_test_* are selected on the test set.\n",
            runs.len()
        );
    }
    let mut sources: BTreeMap<&str, usize> = BTreeMap::new();
    for csv in runs.iter().filter_map(|r| r.eval_csv.as_deref()) {
        *sources.entry(csv).or_default() += 1;
    }
    let best = RunDir::eval_csv_of(&RunDir::at("").checkpoint(Saved::Best));
    if sources.keys().any(|csv| Path::new(csv) != best) {
        let list: Vec<String> = sources.iter().map(|(csv, n)| format!("{csv} ({n} runs)")).collect();
        notes += &format!("\neval.* figures from {}.\n", list.join(", "));
    }
    notes
}

/// `summary_lines.{png,svg}`: the series of [`line_series`].
fn plot_lines(
    root: &Path,
    by: &[String],
    x_key: &str,
    y: &[String],
    groups: &[(Vec<String>, Vec<&Run>)],
) -> Result<()> {
    let series = line_series(by, x_key, y, groups)?;
    let others: Vec<&str> = by.iter().filter(|k| *k != x_key).map(String::as_str).collect();
    let title = if others.is_empty() {
        format!("mean ± sd over runs (dots: runs) by {x_key}")
    } else {
        format!("mean ± sd over runs (dots: runs); lines: {}", others.join(", "))
    };
    let y_label = if y.len() == 1 { y[0].clone() } else { common_prefix(y).trim_end_matches('.').to_string() };
    crate::plot::plot_series(root, "summary_lines", &title, x_key, &y_label, &series)?;
    Ok(())
}

/// Each figure of `y` against the `by` key `x_key` (numeric), one series per value
/// of the other `by` keys (and per figure, when several), in the groups' order.
fn line_series(by: &[String], x_key: &str, y: &[String], groups: &[(Vec<String>, Vec<&Run>)]) -> Result<Vec<Series>> {
    let x_index = by
        .iter()
        .position(|k| k == x_key)
        .with_context(|| format!("--plot-x {x_key}: must be one of the --by keys ({})", by.join(",")))?;
    let mut series: Vec<Series> = Vec::new();
    for (key, members) in groups {
        let x: f64 = key[x_index]
            .parse()
            .with_context(|| format!("--plot-x {x_key}: the value {:?} is not a number", key[x_index]))?;
        // "kind=hetsynlif, recurrent=true": the last part of each other key, and its value
        let others: Vec<String> = by
            .iter()
            .zip(key)
            .enumerate()
            .filter(|(i, _)| *i != x_index)
            .map(|(_, (k, v))| format!("{}={v}", k.rsplit('.').next().unwrap_or(k)))
            .collect();
        for metric in y {
            let mut label = others.join(", ");
            if y.len() > 1 {
                let metric = &metric[common_prefix(y).len()..];
                label = if label.is_empty() { metric.to_string() } else { format!("{label}, {metric}") };
            }
            let values: Vec<f64> = members.iter().filter_map(|r| r.figures.get(metric).copied()).collect();
            match series.iter_mut().find(|s| s.label == label) {
                Some(s) => s.points.push((x, values)),
                None => series.push(Series { label, points: vec![(x, values)] }),
            }
        }
    }
    Ok(series)
}

/// The dotted prefix that all `names` share ("a.b." of "a.b.c" and "a.b.d"), or "".
fn common_prefix(names: &[String]) -> &str {
    let first = names.first().map(String::as_str).unwrap_or("");
    let mut end = 0;
    for (i, c) in first.char_indices() {
        if c == '.' && names.iter().all(|n| n.len() > i && n[..=i] == first[..=i]) {
            end = i + 1;
        }
    }
    &first[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_run(root: &Path, name: &str, kind: &str, seed: u64, accuracy: f64) {
        let dir = RunDir::at(root.join(name));
        std::fs::create_dir_all(dir.path()).unwrap();
        std::fs::write(dir.config(), format!("seed = {seed}\n[model]\nkind = \"{kind}\"\nlayers = [{{ size = 5 }}]\n"))
            .unwrap();
        let mut summary = RunSummary { name: name.into(), model: kind.into(), seed, ..RunSummary::default() };
        summary.figures.test_accuracy_at_best_validation = Some(accuracy);
        summary.figures.last_test_loss = 0.5;
        summary.figures.test_metrics_at_best_validation.insert("distance_2_1".into(), 0.25);
        let tau = crate::train::tau_stats::TauStats {
            count: 3,
            quantiles_ms: BTreeMap::new(),
            fraction_above: 0.0,
            threshold_ms: 700.0,
        };
        summary.tau_last.insert("x".into(), tau);
        std::fs::write(dir.summary(), serde_json::to_string(&summary).unwrap()).unwrap();
    }

    #[test]
    fn groups_mean_and_sd() {
        let dir = tempfile::tempdir().unwrap();
        fake_run(dir.path(), "a", "hetsynlif", 0, 0.9);
        fake_run(dir.path(), "b", "hetsynlif", 1, 0.8);
        fake_run(dir.path(), "nested/c", "homneulif", 0, 0.5);
        let md = summarize(dir.path(), &["model.kind".to_string()], &TableOptions::default()).unwrap();
        assert!(md.contains("| hetsynlif | 2 | 0.8500 ± 0.0707 |"), "{md}");
        assert!(md.contains("| homneulif | 1 | 0.5000 ± 0.0000 |"), "{md}");
        assert!(md.contains("test_metrics_at_best_validation.distance_2_1"), "{md}");
        let csv = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.lines().next().unwrap().starts_with("run_dir,model.kind,"));
        assert!(!csv.contains("tau_last"), "time-constant statistics stay in summary.json");
        assert!(dir.path().join("summary_groups.png").is_file());
        assert!(summarize(dir.path(), &["model.nonsense".to_string()], &TableOptions::default()).is_err());
        let empty = tempfile::tempdir().unwrap();
        assert!(
            format!("{:#}", summarize(empty.path(), &[], &TableOptions::default()).unwrap_err()).contains("no runs")
        );
    }

    #[test]
    fn numeric_groups_in_numeric_order() {
        let keys = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut groups = vec![keys(&["100", "b"]), keys(&["20", "a"]), keys(&["5", "b"]), keys(&["5", "a"])];
        groups.sort_by(|a, b| compare_keys(a, b));
        assert_eq!(groups, [keys(&["5", "a"]), keys(&["5", "b"]), keys(&["20", "a"]), keys(&["100", "b"])]);
    }

    #[test]
    fn chosen_metrics_success_rate_and_eval_figures() {
        let dir = tempfile::tempdir().unwrap();
        fake_run(dir.path(), "a", "hetsynlif", 0, 0.95);
        fake_run(dir.path(), "b", "hetsynlif", 1, 0.85);
        fake_run(dir.path(), "c", "homneulif", 0, 0.5);
        std::fs::create_dir_all(RunDir::at(dir.path().join("a")).checkpoints()).unwrap();
        std::fs::write(
            RunDir::eval_csv_of(&RunDir::at(dir.path().join("a")).checkpoint(Saved::Best)),
            "checkpoint,step,condition,samples,test_loss,test_accuracy,reset_fraction,logged_test_loss,logged_test_accuracy\n\
             x,10,clean,8,0.1,0.95,,0.1,0.95\n\
             x,10,clean+reset_long_tau,8,0.3,0.75,0.125,,\n",
        )
        .unwrap();
        let table = TableOptions {
            metrics: vec!["test_accuracy_at_best_validation".into(), "eval.clean+reset_long_tau.test_accuracy".into()],
            success_at: Some(0.9),
            ..TableOptions::default()
        };
        let md = summarize(dir.path(), &["model.kind".to_string()], &table).unwrap();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| model.kind | runs | success (test_accuracy_at_best_validation ≥ 0.9) | test_accuracy_at_best_validation | eval.clean+reset_long_tau.test_accuracy |"
        );
        assert_eq!(lines[1], "|---|---|---|---|---|");
        assert_eq!(lines[2], "| hetsynlif | 2 | 0.50 (1/2) | 0.9000 ± 0.0707 | 0.7500 ± 0.0000 |");
        assert_eq!(lines[3], "| homneulif | 1 | 0.00 (0/1) | 0.5000 ± 0.0000 | - |");
        let csv = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
        assert!(csv.lines().next().unwrap().contains("eval.clean+reset_long_tau.reset_fraction"), "{csv}");
        assert!(!csv.contains("logged_"), "{csv}");
        let bad = TableOptions { metrics: vec!["nonsense".into()], ..TableOptions::default() };
        assert!(format!("{:#}", summarize(dir.path(), &[], &bad).unwrap_err()).contains("--metrics nonsense"));
    }

    #[test]
    fn line_plot_series_per_other_key() {
        let dir = tempfile::tempdir().unwrap();
        for (name, kind, seed, size, acc) in [
            ("a", "hetsynlif", 0, 20, 0.9),
            ("b", "hetsynlif", 1, 20, 0.7),
            ("c", "hetsynlif", 0, 5, 0.6),
            ("d", "homneulif", 0, 5, 0.5),
        ] {
            fake_run(dir.path(), name, kind, seed, acc);
            let config = RunDir::at(dir.path().join(name)).config();
            let text = fs_read(&config).replace("size = 5", &format!("size = {size}"));
            std::fs::write(&config, text).unwrap();
        }
        let by = ["model.layers.0.size".to_string(), "model.kind".to_string()];
        let table = TableOptions {
            metrics: vec!["test_accuracy_at_best_validation".into()],
            plot_x: Some("model.layers.0.size".into()),
            ..TableOptions::default()
        };
        summarize(dir.path(), &by, &table).unwrap();
        assert!(dir.path().join("summary_lines.png").is_file() && dir.path().join("summary_lines.svg").is_file());

        let runs = collect(dir.path()).unwrap();
        let groups: Vec<(Vec<String>, Vec<&Run>)> = vec![
            (vec!["5".into(), "hetsynlif".into()], vec![&runs[2]]),
            (vec!["5".into(), "homneulif".into()], vec![&runs[3]]),
            (vec!["20".into(), "hetsynlif".into()], vec![&runs[0], &runs[1]]),
        ];
        let series = line_series(&by, "model.layers.0.size", &table.metrics, &groups).unwrap();
        assert_eq!(
            series,
            [
                Series { label: "kind=hetsynlif".into(), points: vec![(5.0, vec![0.6]), (20.0, vec![0.9, 0.7])] },
                Series { label: "kind=homneulif".into(), points: vec![(5.0, vec![0.5])] },
            ]
        );
        let taus = ["x.cue.median_ms".to_string(), "x.noise.median_ms".to_string()];
        assert_eq!(common_prefix(&taus), "x.");
        assert_eq!(common_prefix(&["a.b".to_string(), "a.b.c".to_string()]), "a.");
        assert_eq!(common_prefix(&["ab.c".to_string(), "a.d".to_string()]), "");
        let two = ["test_accuracy_at_best_validation".to_string(), "last_test_loss".to_string()];
        let by_size: Vec<(Vec<String>, Vec<&Run>)> = vec![(vec!["20".into()], vec![&runs[0], &runs[1]])];
        let series = line_series(&by[..1], "model.layers.0.size", &two, &by_size).unwrap();
        assert_eq!(series.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(), two);
        let err = line_series(&by, "seed", &two, &groups).unwrap_err();
        assert!(format!("{err:#}").contains("--plot-x seed: must be one of the --by keys"), "{err:#}");
        let by_kind: Vec<(Vec<String>, Vec<&Run>)> = vec![(vec!["hetsynlif".into()], vec![&runs[0]])];
        let err = line_series(&by[1..], "model.kind", &two, &by_kind).unwrap_err();
        assert!(format!("{err:#}").contains("is not a number"), "{err:#}");
    }

    fn fs_read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }
}
