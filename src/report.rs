//! The reproduction report from the results kept as data (`docs/results/*.csv`,
//! written by `hetsyn record`): its tables, written into the marked blocks of
//! the report (`<!-- table:NAME -->` … `<!-- end -->`), and its figures, drawn as
//! the paper draws its panels. Nothing is trained or evaluated: the same files
//! give the same report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::io::atomic::write_atomic;
use crate::plot::{
    mean_sd, plot_bars, plot_boxes, plot_curves, plot_outputs, plot_series_within, OutputPanel, Series,
};
use crate::summarize::compare_keys;

/// The models in the paper's order, with their names as printed.
const MODELS: [(&str, &str); 4] =
    [("hetsynlif", "HetSynLIF"), ("hetneulif", "HetNeuLIF"), ("homneualif", "HomNeuALIF"), ("homneulif", "HomNeuLIF")];

/// Test accuracy at or above this counts as a success (the paper's DMS criterion).
const SUCCESS: f64 = 0.9;

/// One results CSV: rows as column → cell.
struct Results {
    rows: Vec<BTreeMap<String, String>>,
}

impl Results {
    /// `<dir>/<name>.csv`, or `None` when it does not exist or has no rows.
    fn read(dir: &Path, name: &str) -> Result<Option<Results>> {
        let path = dir.join(format!("{name}.csv"));
        if !path.exists() {
            return Ok(None);
        }
        let mut reader = csv::Reader::from_path(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let headers = reader.headers().with_context(|| format!("{} has no header", path.display()))?.clone();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.with_context(|| format!("{} is not valid CSV", path.display()))?;
            rows.push(headers.iter().zip(record.iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect());
        }
        Ok((!rows.is_empty()).then_some(Results { rows }))
    }

    /// The rows whose `key` cells equal the given values.
    fn select(&self, filter: &[(&str, &str)]) -> Vec<&BTreeMap<String, String>> {
        self.rows.iter().filter(|r| filter.iter().all(|(k, v)| r.get(*k).is_some_and(|c| same(c, v)))).collect()
    }

    /// The distinct values of `key`, in order (numbers by value).
    fn values(&self, key: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.rows {
            if let Some(v) = r.get(key) {
                if !out.iter().any(|o| same(o, v)) {
                    out.push(v.clone());
                }
            }
        }
        out.sort_by(|a, b| compare_keys(std::slice::from_ref(a), std::slice::from_ref(b)));
        out
    }
}

/// Cells equal as numbers (`0.8` and `0.80`) or as text.
fn same(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The finite numbers of column `key` in `rows`.
fn numbers(rows: &[&BTreeMap<String, String>], key: &str) -> Vec<f64> {
    rows.iter().filter_map(|r| r.get(key)?.parse::<f64>().ok()).filter(|v| v.is_finite()).collect()
}

/// `mean ± sd` with `digits` decimals, or `–` for no values.
fn mean_pm(values: &[f64], digits: usize) -> String {
    if values.is_empty() {
        return "–".into();
    }
    let (mean, sd) = mean_sd(values);
    format!("{mean:.digits$} ± {sd:.digits$}")
}

/// `k/n` successes (test accuracy ≥ [`SUCCESS`]) with the mean ± sd accuracy.
fn success_cell(rows: &[&BTreeMap<String, String>]) -> String {
    let acc = numbers(rows, "test_accuracy_at_best_validation");
    if acc.is_empty() {
        return "–".into();
    }
    let k = acc.iter().filter(|a| **a >= SUCCESS).count();
    format!("{k}/{}, {}", acc.len(), mean_pm(&acc, 3))
}

fn topology(recurrent: &str) -> &'static str {
    if recurrent == "true" {
        "R"
    } else {
        "F"
    }
}

/// A markdown table.
fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// What [`report`] made.
#[derive(Debug, Default)]
pub struct Report {
    /// Markdown tables by block name.
    pub tables: BTreeMap<String, String>,
    pub figures: Vec<PathBuf>,
}

/// Builds every table and figure whose results file exists in `results`;
/// figures go to `figures` as `<panel>.{png,svg}`.
pub fn build(results: &Path, figures: &Path) -> Result<Report> {
    std::fs::create_dir_all(figures).with_context(|| format!("cannot create {}", figures.display()))?;
    let mut report = Report::default();
    let all = Experiments {
        pattern: Results::read(results, "pattern")?,
        neurons: Results::read(results, "dms_neurons")?,
        masking: Results::read(results, "dms_decay_masking")?,
        delay_noise: Results::read(results, "dms_delay_noise")?,
        tau_init: Results::read(results, "dms_tau_init")?,
        learning_rates: Results::read(results, "pattern_lr")?,
        targets: Results::read(results, "pattern_targets")?,
    };
    if let Some(r) = &all.pattern {
        pattern(r, &Results::read(&results.join("curves"), "pattern")?, figures, &mut report)?;
    }
    if let Some(t) = Results::read(&results.join("traces"), "pattern")? {
        pattern_traces(&t, figures, &mut report)?;
    }
    if let Some(r) = &all.learning_rates {
        learning_rates(r, &Results::read(&results.join("curves"), "pattern_lr")?, figures, &mut report)?;
    }
    if let Some(r) = &all.targets {
        targets(r, &Results::read(&results.join("traces"), "pattern_targets")?, figures, &mut report)?;
    }
    if let Some(r) = &all.neurons {
        dms_neurons(r, &Results::read(&results.join("curves"), "dms_neurons")?, figures, &mut report)?;
    }
    if let Some(r) = &all.masking {
        masking(r, figures, &mut report)?;
    }
    if let Some(r) = &all.delay_noise {
        delay_noise(r, figures, &mut report)?;
    }
    if let Some(r) = &all.tau_init {
        tau_init(r, &mut report);
    }
    report.tables.insert("headline".into(), headline(&all));
    report.tables.insert("run_counts".into(), run_counts(&all));
    Ok(report)
}

/// Per experiment: its cells (distinct values of the keys that vary), the runs
/// recorded per cell against the paper's count, and the compute they took.
fn run_counts(e: &Experiments) -> String {
    let header: Vec<String> = [
        "experiment",
        "cells",
        "runs recorded",
        "per cell (min–max)",
        "paper's runs per cell",
        "training time (sum of runs)",
    ]
    .map(String::from)
    .to_vec();
    let experiments = [
        ("pattern", &e.pattern, 10),
        ("pattern_lr", &e.learning_rates, 10),
        ("pattern_targets", &e.targets, 10),
        ("dms_neurons", &e.neurons, 50),
        ("dms_decay_masking", &e.masking, 50),
        ("dms_delay_noise", &e.delay_noise, 50),
        ("dms_tau_init", &e.tau_init, 5),
    ];
    let mut rows = Vec::new();
    for (name, results, paper) in experiments {
        let Some(r) = results else {
            rows.push(vec![name.to_string(), "–".into(), "0".into(), "–".into(), paper.to_string(), "–".into()]);
            continue;
        };
        // the key columns lie between `experiment` and `seed`
        let mut cells: BTreeMap<Vec<String>, usize> = BTreeMap::new();
        for row in &r.rows {
            let key: Vec<String> = row
                .iter()
                .filter(|(k, _)| k.starts_with("model.") || k.starts_with("task.") || k.starts_with("train."))
                .map(|(_, v)| v.clone())
                .collect();
            *cells.entry(key).or_default() += 1;
        }
        let (lo, hi) = (cells.values().min().copied().unwrap_or(0), cells.values().max().copied().unwrap_or(0));
        let seconds: f64 = r.rows.iter().filter_map(|row| row.get("wall_s")?.parse::<f64>().ok()).sum();
        rows.push(vec![
            name.to_string(),
            cells.len().to_string(),
            r.rows.len().to_string(),
            if lo == hi { lo.to_string() } else { format!("{lo}–{hi}") },
            paper.to_string(),
            format!("{:.1} h", seconds / 3600.0),
        ]);
    }
    table(&header, &rows)
}

/// The results of every experiment that has rows.
struct Experiments {
    pattern: Option<Results>,
    neurons: Option<Results>,
    masking: Option<Results>,
    delay_noise: Option<Results>,
    tau_init: Option<Results>,
    learning_rates: Option<Results>,
    targets: Option<Results>,
}

/// `mean ± sd (n = runs)` of `column` over the rows matching `filter`.
fn cell(r: &Option<Results>, filter: &[(&str, &str)], column: &str, digits: usize) -> String {
    let Some(r) = r else { return "not run".into() };
    let values = numbers(&r.select(filter), column);
    if values.is_empty() {
        return "not run".into();
    }
    format!("{} (n = {})", mean_pm(&values, digits), values.len())
}

/// `k/n` successes over the rows matching `filter`.
fn successes(r: &Option<Results>, filter: &[(&str, &str)]) -> String {
    let Some(r) = r else { return "not run".into() };
    let acc = numbers(&r.select(filter), "test_accuracy_at_best_validation");
    if acc.is_empty() {
        return "not run".into();
    }
    format!("{}/{}", acc.iter().filter(|a| **a >= SUCCESS).count(), acc.len())
}

/// The paper's claims, one row each: its statement and number, and the
/// measured figure computed from the results (the verdicts are in the text).
fn headline(e: &Experiments) -> String {
    let header: Vec<String> =
        ["#", "paper's claim", "paper", "measured (mean ± sd, runs)", "command", "the experiment's training time (sum of its runs)"]
            .map(String::from)
            .to_vec();
    let mut rows: Vec<Vec<String>> = Vec::new();
    // the experiment's script and the wall time of all its recorded runs
    let source = |name: &str, r: &Option<Results>| {
        let seconds: f64 =
            r.iter().flat_map(|r| &r.rows).filter_map(|row| row.get("wall_s")?.parse::<f64>().ok()).sum();
        (format!("`scripts/paper/{name}.sh`"), format!("{:.1} h", seconds / 3600.0))
    };
    let mut push = |claim: &str, paper: &str, measured: String, (command, time): (String, String)| {
        rows.push(vec![(rows.len() + 1).to_string(), claim.to_string(), paper.to_string(), measured, command, time]);
    };
    // pattern: for each topology, at how many noise rates HetSynLIF has the lowest mean MSE
    let lowest = |rec: &str| -> String {
        let Some(r) = &e.pattern else { return "not run".into() };
        let mse = "test_loss_at_best_validation";
        let rates = r.values("task.noise_rate");
        let mut wins = 0;
        let mut counted = 0;
        for rate in &rates {
            let mean_of = |kind: &str| {
                let v = numbers(
                    &r.select(&[("task.noise_rate", rate), ("model.kind", kind), ("model.layers.0.recurrent", rec)]),
                    mse,
                );
                (!v.is_empty()).then(|| mean_sd(&v).0)
            };
            let Some(het) = mean_of("hetsynlif") else { continue };
            counted += 1;
            if MODELS[1..].iter().filter_map(|(k, _)| mean_of(k)).all(|other| het < other) {
                wins += 1;
            }
        }
        let runs = numbers(&r.select(&[("model.layers.0.recurrent", rec)]), mse).len();
        format!("HetSynLIF lowest at {wins} of {counted} noise rates ({runs} runs)")
    };
    push(
        "Pattern generation: HetSynLIF has the lowest MSE at every noise level (Fig. 2E/2F)",
        "lowest at 1–4 Hz",
        format!("F: {}; R: {}", lowest("false"), lowest("true")),
        source("pattern", &e.pattern),
    );
    let distance = |kind: &str| {
        cell(
            &e.pattern,
            &[("model.kind", kind), ("model.layers.0.recurrent", "false")],
            "test_metrics_at_best_validation.distance_2_1",
            4,
        )
    };
    push(
        "Pattern generation: normalised distance between the outputs of repeats of the frozen input (1: as different as the targets, 0: the same output each time) nearest the target's for HetSynLIF; HomNeuALIF and HetNeuLIF slightly above HomNeuLIF (Fig. 2B–C)",
        "ordering (figure)",
        format!(
            "F, d(2,1): HetSynLIF {}, HetNeuLIF {}, HomNeuALIF {}, HomNeuLIF {}",
            distance("hetsynlif"),
            distance("hetneulif"),
            distance("homneualif"),
            distance("homneulif")
        ),
        source("pattern", &e.pattern),
    );
    push(
        "DMS: recurrent HetSynLIF (100 neurons) solves the task",
        "≈ 100 %",
        cell(
            &e.neurons,
            &[("model.layers.0.size", "100"), ("model.kind", "hetsynlif"), ("model.layers.0.recurrent", "true")],
            "test_accuracy_at_best_validation",
            3,
        ),
        source("dms_neurons", &e.neurons),
    );
    let five = |kind: &str, rec: &str| {
        successes(&e.neurons, &[("model.layers.0.size", "5"), ("model.kind", kind), ("model.layers.0.recurrent", rec)])
    };
    push(
        "DMS with limited neurons: HetSynLIF has higher success rates than the other models, down to 5 neurons (Fig. 3D–G)",
        "success rates (figure; 50 runs)",
        format!(
            "5 neurons, successes F / R: HetSynLIF {} / {}, HetNeuLIF {} / {}, HomNeuALIF {} / {}, HomNeuLIF {} / {}",
            five("hetsynlif", "false"),
            five("hetsynlif", "true"),
            five("hetneulif", "false"),
            five("hetneulif", "true"),
            five("homneualif", "false"),
            five("homneualif", "true"),
            five("homneulif", "false"),
            five("homneulif", "true")
        ),
        source("dms_neurons", &e.neurons),
    );
    push(
        "DMS decay masking: with 80 % of the decays frozen HetSynLIF still solves the task (Fig. 3C)",
        "≈ 100 % at 0.8",
        format!(
            "0.8 frozen, delay 0.8 s: {}; 1.0 frozen: {}",
            cell(
                &e.masking,
                &[("task.delay", "0.8"), ("model.frozen_decay_fraction", "0.8")],
                "test_accuracy_at_best_validation",
                3
            ),
            cell(
                &e.masking,
                &[("task.delay", "0.8"), ("model.frozen_decay_fraction", "1")],
                "test_accuracy_at_best_validation",
                3
            )
        ),
        source("dms_decay_masking", &e.masking),
    );
    let a3 = |kind: &str, key: &str, value: &str| {
        let fixed: Vec<(&str, &str)> =
            [("task.delay", "0.8"), ("task.addition_noise_rate", "0"), ("task.noise_rate", "10")]
                .into_iter()
                .map(|(k, v)| if k == key { (k, value) } else { (k, v) })
                .chain(std::iter::once(("model.kind", kind)))
                .collect();
        cell(&e.delay_noise, &fixed, "test_accuracy_at_best_validation", 3)
    };
    push(
        "DMS: R-HetSynLIF retains nearly 80 % accuracy under noise of 20 Hz (§4.2, Fig. A3)",
        "≈ 80 %",
        format!(
            "added on every channel: {}; noise channels at 20 Hz: {}",
            a3("hetsynlif", "task.addition_noise_rate", "20"),
            a3("hetsynlif", "task.noise_rate", "20")
        ),
        source("dms_delay_noise", &e.delay_noise),
    );
    push(
        "DMS: HetSynLIF holds the cue over longer delays than the other models (Fig. A3)",
        "figure",
        format!(
            "delay 2.5 s: HetSynLIF {}, HetNeuLIF {}, HomNeuALIF {}, HomNeuLIF {}",
            a3("hetsynlif", "task.delay", "2.5"),
            a3("hetneulif", "task.delay", "2.5"),
            a3("homneualif", "task.delay", "2.5"),
            a3("homneulif", "task.delay", "2.5")
        ),
        source("dms_delay_noise", &e.delay_noise),
    );
    let change = |rec: &str, mu: &str, group: &str| {
        let Some(r) = &e.tau_init else { return "not run".to_string() };
        let v = numbers(
            &r.select(&[("model.layers.0.recurrent", rec), ("model.tau_init.mean", mu)]),
            &format!("input_tau_at_best_validation.{group}.mean_decay_tau_ms"),
        );
        let mu_ms = mu.parse::<f64>().unwrap_or(f64::NAN) * 1000.0;
        if v.is_empty() {
            "–".into()
        } else {
            format!("{:+.0} %", 100.0 * (mean_sd(&v).0 / mu_ms - 1.0))
        }
    };
    push(
        "Table 4: cue synapses lengthen their mean τ from μ more than noise synapses (μ = 100 / 200 / 400 ms)",
        "cue +54 / +26 / +8 %, noise −14 % (μ = 100)",
        format!(
            "τ of the mean decay vs μ, cue / noise: F {} / {}, {} / {}, {} / {}; R {} / {}, {} / {}, {} / {}",
            change("false", "0.1", "cue"),
            change("false", "0.1", "noise"),
            change("false", "0.2", "cue"),
            change("false", "0.2", "noise"),
            change("false", "0.4", "cue"),
            change("false", "0.4", "noise"),
            change("true", "0.1", "cue"),
            change("true", "0.1", "noise"),
            change("true", "0.2", "cue"),
            change("true", "0.2", "noise"),
            change("true", "0.4", "cue"),
            change("true", "0.4", "noise"),
        ),
        source("dms_tau_init", &e.tau_init),
    );
    let reset = |rec: &str, column: &str| cell(&e.tau_init, &[("model.layers.0.recurrent", rec)], column, 3);
    push(
        "Table 4: resetting the ~5–6 % of synapses with τ > 700 ms to the initial mean lowers the accuracy",
        "99.97 % → 75.68 %",
        format!(
            "all μ pooled, F: {} → {} ({} of the input synapses reset); R: {} → {} ({})",
            reset("false", "test_accuracy_at_best_validation"),
            reset("false", "eval.clean+reset_first_input_to_mean.test_accuracy"),
            reset("false", "eval.clean+reset_first_input_to_mean.reset_fraction"),
            reset("true", "test_accuracy_at_best_validation"),
            reset("true", "eval.clean+reset_first_input_to_mean.test_accuracy"),
            reset("true", "eval.clean+reset_first_input_to_mean.reset_fraction"),
        ),
        source("dms_tau_init", &e.tau_init),
    );
    table(&header, &rows)
}

/// Writes `tables` into the marked blocks of `doc`: the lines between
/// `<!-- table:NAME -->` and the next `<!-- end -->` are replaced; a block whose
/// table is missing says so. Returns the names of the blocks filled.
pub fn fill_document(doc: &Path, tables: &BTreeMap<String, String>) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(doc).with_context(|| format!("cannot read {}", doc.display()))?;
    let mut out = String::with_capacity(text.len());
    let mut filled = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        let Some(name) = line.trim().strip_prefix("<!-- table:").and_then(|r| r.strip_suffix("-->")) else {
            continue;
        };
        let name = name.trim();
        let mut closed = false;
        for inner in lines.by_ref() {
            if inner.trim() == "<!-- end -->" {
                closed = true;
                break;
            }
        }
        if !closed {
            bail!("{}: the block <!-- table:{name} --> has no <!-- end -->", doc.display());
        }
        match tables.get(name) {
            Some(t) => {
                out.push_str(t);
                filled.push(name.to_string());
            }
            None => out.push_str(&format!("*No results recorded yet (docs/results has no rows for `{name}`).*\n")),
        }
        out.push_str("<!-- end -->\n");
    }
    write_atomic(doc, out.as_bytes())?;
    Ok(filled)
}

/// Per model (paper's order), `column` at each value of `x_key` over the rows
/// matching `filter` (x values parsed as numbers).
fn model_series(r: &Results, x_key: &str, xs: &[String], filter: &[(&str, &str)], column: &str) -> Vec<Series> {
    MODELS
        .iter()
        .map(|(kind, name)| Series {
            label: name.to_string(),
            points: xs
                .iter()
                .map(|x| {
                    let mut f: Vec<(&str, &str)> = filter.to_vec();
                    f.extend([(x_key, x.as_str()), ("model.kind", *kind)]);
                    (x.parse().unwrap_or(f64::NAN), numbers(&r.select(&f), column))
                })
                .collect(),
        })
        .collect()
}

/// A table of `column` (mean ± sd, runs) with a row per value of `x_key` and a
/// column per model (paper's order) and topology.
fn per_model_table(r: &Results, x_key: &str, x_label: &str, column: &str) -> String {
    let xs = r.values(x_key);
    let mut header = vec![x_label.to_string()];
    let mut rows: Vec<Vec<String>> = xs.iter().map(|x| vec![x.clone()]).collect();
    for (kind, name) in MODELS {
        for rec in ["false", "true"] {
            header.push(format!("{name} {}", topology(rec)));
            for (row, x) in rows.iter_mut().zip(&xs) {
                let sel = r.select(&[(x_key, x), ("model.kind", kind), ("model.layers.0.recurrent", rec)]);
                let values = numbers(&sel, column);
                row.push(format!("{} (n={})", mean_pm(&values, 3), values.len()));
            }
        }
    }
    table(&header, &rows)
}

/// Fig. 2B-F: MSE per noise rate and model, F and R; normalised distances
/// between repeats; MSE against iteration.
fn pattern(r: &Results, curves: &Option<Results>, dir: &Path, report: &mut Report) -> Result<()> {
    let noise = r.values("task.noise_rate");
    let mse = "test_loss_at_best_validation";
    report.tables.insert("pattern_mse".into(), per_model_table(r, "task.noise_rate", "noise (Hz)", mse));

    let mut header = vec!["model".to_string()];
    for rec in ["false", "true"] {
        for d in ["d(2,1)", "d(3,2)"] {
            header.push(format!("{} {d}", topology(rec)));
        }
    }
    let mut rows = Vec::new();
    for (kind, name) in MODELS {
        let mut row = vec![name.to_string()];
        for rec in ["false", "true"] {
            let sel = r.select(&[("model.kind", kind), ("model.layers.0.recurrent", rec)]);
            for col in ["distance_2_1", "distance_3_2"] {
                let values = numbers(&sel, &format!("test_metrics_at_best_validation.{col}"));
                row.push(format!("{} (n={})", mean_pm(&values, 4), values.len()));
            }
        }
        rows.push(row);
    }
    report.tables.insert("pattern_distances".into(), table(&header, &rows));

    for rec in ["false", "true"] {
        let series = model_series(r, "task.noise_rate", &noise, &[("model.layers.0.recurrent", rec)], mse);
        let (panel, topo) = if rec == "false" { ("fig2e", "feed-forward") } else { ("fig2f", "recurrent") };
        report.figures.extend(plot_series_within(
            dir,
            &format!("{panel}_pattern_mse_{topo}"),
            &format!("Pattern generation, {topo}: test MSE against background noise"),
            ("background noise rate (Hz)", "test MSE (model selected on validation)"),
            &series,
            (0.0, f64::INFINITY),
        )?);
        for (col, panel) in [("distance_2_1", "fig2b"), ("distance_3_2", "fig2c")] {
            let column = format!("test_metrics_at_best_validation.{col}");
            let series = model_series(r, "task.noise_rate", &noise, &[("model.layers.0.recurrent", rec)], &column);
            let repeats = if col == "distance_2_1" { "2 and 1" } else { "3 and 2" };
            report.figures.extend(plot_series_within(
                dir,
                &format!("{panel}_pattern_distance_{topo}"),
                &format!("Pattern generation, {topo}: distance between repeats {repeats}"),
                ("background noise rate (Hz)", "normalised distance (output / target)"),
                &series,
                (0.0, f64::INFINITY),
            )?);
        }
    }
    if let Some(c) = curves {
        for rec in ["false", "true"] {
            let topo = if rec == "false" { "feed-forward" } else { "recurrent" };
            let series = curve_series(c, &[("model.layers.0.recurrent", rec)], "test_loss");
            report.figures.extend(plot_curves(
                dir,
                &format!("fig2d_pattern_curves_{topo}"),
                &format!("Pattern generation, {topo}: test MSE during training (all noise rates)"),
                ("iteration", "test MSE"),
                &series,
                (0.0, f64::INFINITY),
            )?);
        }
    }
    Ok(())
}

/// The output panels of the traces of one run (the rows of `traces` matching
/// `filter`, one panel per readout, captioned `caption(readout)`), and the
/// shaded windows (label, ms) of its trial.
#[allow(clippy::type_complexity)]
fn trace_panels(
    traces: &Results,
    filter: &[(&str, &str)],
    caption: impl Fn(usize) -> String,
) -> (Vec<OutputPanel>, Vec<(String, std::ops::Range<f64>)>) {
    let rows = traces.select(filter);
    let mut panels: BTreeMap<usize, OutputPanel> = BTreeMap::new();
    let mut windows: Vec<(String, std::ops::Range<f64>)> = Vec::new();
    let mut step_ms = f64::NAN;
    for row in rows {
        let num = |k: &str| row.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
        let Some(o) = row.get("output").and_then(|v| v.parse::<usize>().ok()) else { continue };
        let t = num("time_ms");
        let panel = panels.entry(o).or_insert_with(|| OutputPanel {
            caption: caption(o),
            target: Vec::new(),
            output: Vec::new(),
        });
        if let Some(&(last, _)) = panel.target.last() {
            step_ms = t - last;
        }
        panel.target.push((t, num("target")));
        panel.output.push((t, num("y")));
        // a step ending at t covers (t - step, t]: its window is extended to t
        let label = row.get("window").map(String::as_str).unwrap_or("");
        if o == 0 && !label.is_empty() {
            match windows.last_mut() {
                Some((l, w)) if l == label => w.end = t,
                _ => windows.push((label.to_string(), t..t)),
            }
        }
    }
    if step_ms.is_finite() {
        for (_, w) in &mut windows {
            w.start -= step_ms;
        }
    }
    (panels.into_values().collect(), windows)
}

/// Fig. 2A: the output of each model against the target on the first test
/// trial, one run per model (the recorded traces), F and R.
fn pattern_traces(t: &Results, dir: &Path, report: &mut Report) -> Result<()> {
    for rec in ["false", "true"] {
        let topo = if rec == "false" { "feed-forward" } else { "recurrent" };
        let mut panels = Vec::new();
        let mut windows = Vec::new();
        for (kind, name) in MODELS {
            let seeds = t.select(&[("model.kind", kind), ("model.layers.0.recurrent", rec)]);
            let Some(seed) = seeds.first().and_then(|r| r.get("seed")).cloned() else { continue };
            let noise = seeds[0].get("task.noise_rate").cloned().unwrap_or_default();
            let (p, w) = trace_panels(
                t,
                &[("model.kind", kind), ("model.layers.0.recurrent", rec), ("seed", &seed), ("output", "0")],
                |_| format!("{name} (seed {seed}, background noise {noise} Hz)"),
            );
            panels.extend(p);
            windows = w;
        }
        if panels.is_empty() {
            continue;
        }
        report.figures.extend(plot_outputs(
            dir,
            &format!("fig2a_pattern_outputs_{topo}"),
            &format!("Pattern generation, {topo}: output (blue) and target (black), first test trial"),
            panels,
            windows,
        )?);
    }
    Ok(())
}

/// Fig. A1: test MSE per learning rate, model and topology; the learning
/// curves at each rate.
fn learning_rates(r: &Results, curves: &Option<Results>, dir: &Path, report: &mut Report) -> Result<()> {
    let rates = r.values("train.lr");
    let mse = "test_loss_at_best_validation";
    report.tables.insert("pattern_lr".into(), per_model_table(r, "train.lr", "learning rate", mse));
    for rec in ["false", "true"] {
        let topo = if rec == "false" { "feed-forward" } else { "recurrent" };
        let series = model_series(r, "train.lr", &rates, &[("model.layers.0.recurrent", rec)], mse);
        report.figures.extend(plot_series_within(
            dir,
            &format!("figa1_pattern_lr_mse_{topo}"),
            &format!("Pattern generation, {topo}: test MSE against the learning rate"),
            ("Adam learning rate (weights and decays)", "test MSE (model selected on validation)"),
            &series,
            (0.0, f64::INFINITY),
        )?);
        let Some(c) = curves else { continue };
        for lr in &rates {
            let series = curve_series(c, &[("train.lr", lr), ("model.layers.0.recurrent", rec)], "test_loss");
            report.figures.extend(plot_curves(
                dir,
                &format!("figa1_pattern_lr_curves_{topo}_{lr}"),
                &format!("Pattern generation, {topo}, learning rate {lr}: test MSE during training"),
                ("iteration", "test MSE"),
                &series,
                (0.0, f64::INFINITY),
            )?);
        }
    }
    Ok(())
}

/// Fig. A2: three targets learned at once: test MSE per model and topology,
/// and the three outputs of one run per model.
fn targets(r: &Results, traces: &Option<Results>, dir: &Path, report: &mut Report) -> Result<()> {
    let header: Vec<String> =
        ["model", "F: test MSE", "R: test MSE", "F: last test MSE", "R: last test MSE"].map(String::from).to_vec();
    let mut rows = Vec::new();
    for (kind, name) in MODELS {
        let mut row = vec![name.to_string()];
        for column in ["test_loss_at_best_validation", "last_test_loss"] {
            for rec in ["false", "true"] {
                let values = numbers(&r.select(&[("model.kind", kind), ("model.layers.0.recurrent", rec)]), column);
                row.push(format!("{} (n={})", mean_pm(&values, 3), values.len()));
            }
        }
        rows.push(row);
    }
    report.tables.insert("pattern_targets".into(), table(&header, &rows));
    let Some(t) = traces else { return Ok(()) };
    for rec in ["false", "true"] {
        let topo = if rec == "false" { "feed-forward" } else { "recurrent" };
        for (kind, name) in MODELS {
            let sel = t.select(&[("model.kind", kind), ("model.layers.0.recurrent", rec)]);
            let Some(seed) = sel.first().and_then(|r| r.get("seed")).cloned() else { continue };
            let (panels, windows) = trace_panels(
                t,
                &[("model.kind", kind), ("model.layers.0.recurrent", rec), ("seed", &seed)],
                |o| format!("target {}", o + 1),
            );
            report.figures.extend(plot_outputs(
                dir,
                &format!("figa2_pattern_targets_{topo}_{kind}"),
                &format!("Three targets at once, {name}, {topo} (seed {seed}): outputs (blue) and targets (black)"),
                panels,
                windows,
            )?);
        }
    }
    Ok(())
}

/// Per model (paper's order), the curve of `column` against `step`, over the
/// runs matching `filter`.
fn curve_series(c: &Results, filter: &[(&str, &str)], column: &str) -> Vec<Series> {
    MODELS
        .iter()
        .map(|(kind, name)| {
            let mut f: Vec<(&str, &str)> = filter.to_vec();
            f.push(("model.kind", kind));
            let rows = c.select(&f);
            let mut by_step: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
            for row in rows {
                let step = row.get("step").and_then(|s| s.parse::<u64>().ok());
                let value = row.get(column).and_then(|v| v.parse::<f64>().ok());
                if let (Some(s), Some(v)) = (step, value) {
                    by_step.entry(s).or_default().push(v);
                }
            }
            Series { label: name.to_string(), points: by_step.into_iter().map(|(s, v)| (s as f64, v)).collect() }
        })
        .collect()
}

/// Fig. 3D-G: success and accuracy per hidden size, model, F and R; Fig. 3B:
/// learning curves of the four feed-forward models at 100 neurons.
fn dms_neurons(r: &Results, curves: &Option<Results>, dir: &Path, report: &mut Report) -> Result<()> {
    let sizes = r.values("model.layers.0.size");
    let mut header = vec!["hidden neurons".to_string()];
    let mut rows: Vec<Vec<String>> = sizes.iter().map(|s| vec![s.clone()]).collect();
    for (kind, name) in MODELS {
        for rec in ["false", "true"] {
            header.push(format!("{name} {}", topology(rec)));
            for (row, size) in rows.iter_mut().zip(&sizes) {
                let sel =
                    r.select(&[("model.layers.0.size", size), ("model.kind", kind), ("model.layers.0.recurrent", rec)]);
                row.push(success_cell(&sel));
            }
        }
    }
    report.tables.insert("dms_neurons".into(), table(&header, &rows));
    for rec in ["false", "true"] {
        let topo = if rec == "false" { "feed-forward" } else { "recurrent" };
        let (bars_panel, acc_panel) = if rec == "false" { ("fig3d", "fig3e") } else { ("fig3f", "fig3g") };
        let mut bars = Vec::new();
        let mut series = Vec::new();
        for (kind, name) in MODELS {
            let mut cells = Vec::new();
            let mut points = Vec::new();
            for size in &sizes {
                let sel =
                    r.select(&[("model.layers.0.size", size), ("model.kind", kind), ("model.layers.0.recurrent", rec)]);
                let acc = numbers(&sel, "test_accuracy_at_best_validation");
                let k = acc.iter().filter(|a| **a >= SUCCESS).count();
                cells.push((!acc.is_empty()).then(|| (k as f64 / acc.len() as f64, format!("{k}/{}", acc.len()))));
                points.push((size.parse().unwrap_or(f64::NAN), acc));
            }
            bars.push((name.to_string(), cells));
            series.push(Series { label: name.to_string(), points });
        }
        report.figures.extend(plot_bars(
            dir,
            &format!("{bars_panel}_dms_success_{topo}"),
            &format!("DMS, {topo}: runs reaching 90 % test accuracy"),
            ("hidden neurons", "fraction of runs successful"),
            &sizes,
            &bars,
        )?);
        report.figures.extend(plot_series_within(
            dir,
            &format!("{acc_panel}_dms_accuracy_{topo}"),
            &format!("DMS, {topo}: test accuracy against hidden size"),
            ("hidden neurons", "test accuracy (model selected on validation)"),
            &series,
            (0.0, 1.0),
        )?);
    }
    if let Some(c) = curves {
        let series =
            curve_series(c, &[("model.layers.0.size", "100"), ("model.layers.0.recurrent", "false")], "test_accuracy");
        report.figures.extend(plot_curves(
            dir,
            "fig3b_dms_curves_feedforward_100",
            "DMS, feed-forward, 100 neurons: test accuracy during training",
            ("iteration", "test accuracy"),
            &series,
            (0.0, 1.0),
        )?);
    }
    Ok(())
}

/// Fig. 3C: accuracy against the fraction of decays frozen, per delay.
fn masking(r: &Results, dir: &Path, report: &mut Report) -> Result<()> {
    let delays = r.values("task.delay");
    let fractions = r.values("model.frozen_decay_fraction");
    let mut header = vec!["fraction frozen".to_string()];
    header.extend(delays.iter().map(|d| format!("delay {d} s")));
    let rows: Vec<Vec<String>> = fractions
        .iter()
        .map(|f| {
            let mut row = vec![f.clone()];
            row.extend(
                delays
                    .iter()
                    .map(|d| success_cell(&r.select(&[("task.delay", d), ("model.frozen_decay_fraction", f)]))),
            );
            row
        })
        .collect();
    report.tables.insert("dms_decay_masking".into(), table(&header, &rows));
    let series: Vec<Series> = delays
        .iter()
        .map(|d| Series {
            label: format!("delay {d} s"),
            points: fractions
                .iter()
                .map(|f| {
                    let sel = r.select(&[("task.delay", d), ("model.frozen_decay_fraction", f)]);
                    (f.parse().unwrap_or(f64::NAN), numbers(&sel, "test_accuracy_at_best_validation"))
                })
                .collect(),
        })
        .collect();
    report.figures.extend(plot_series_within(
        dir,
        "fig3c_dms_decay_masking",
        "DMS, recurrent HetSynLIF: decays frozen at their initial values",
        ("fraction of learnable decays frozen", "test accuracy (model selected on validation)"),
        &series,
        (0.0, 1.0),
    )?);
    Ok(())
}

/// Fig. A3: accuracy and iterations to 95 % against delay, addition noise and
/// noise-channel rate.
fn delay_noise(r: &Results, dir: &Path, report: &mut Report) -> Result<()> {
    // each sweep: its key, the other keys at the recipe's values, axis label
    let sweeps = [
        ("delay", "task.delay", [("task.addition_noise_rate", "0"), ("task.noise_rate", "10")], "delay (s)"),
        (
            "addition",
            "task.addition_noise_rate",
            [("task.delay", "0.8"), ("task.noise_rate", "10")],
            "addition noise on every channel (Hz)",
        ),
        (
            "channels",
            "task.noise_rate",
            [("task.delay", "0.8"), ("task.addition_noise_rate", "0")],
            "rate of the 10 noise channels (Hz)",
        ),
    ];
    for (sweep, key, fixed, label) in sweeps {
        let base = r.select(&fixed);
        let mut xs: Vec<String> = Vec::new();
        for row in &base {
            if let Some(v) = row.get(key) {
                if !xs.iter().any(|x| same(x, v)) {
                    xs.push(v.clone());
                }
            }
        }
        xs.sort_by(|a, b| compare_keys(std::slice::from_ref(a), std::slice::from_ref(b)));
        let mut header = vec![label.to_string()];
        let mut rows: Vec<Vec<String>> = xs.iter().map(|x| vec![x.clone()]).collect();
        let (mut acc_series, mut iter_series) = (Vec::new(), Vec::new());
        for (kind, name) in MODELS {
            header.push(format!("{name}: k/n, accuracy; iterations to 95 %"));
            let (mut acc_points, mut iter_points) = (Vec::new(), Vec::new());
            for (row, x) in rows.iter_mut().zip(&xs) {
                let mut filter = fixed.to_vec();
                filter.push((key, x));
                filter.push(("model.kind", kind));
                let sel = r.select(&filter);
                let reached = numbers(&sel, "iterations_to_95");
                let median = if reached.is_empty() {
                    "never".to_string()
                } else {
                    let mut sorted = reached.clone();
                    sorted.sort_by(f64::total_cmp);
                    format!("median {} ({}/{} reached)", sorted[sorted.len() / 2], reached.len(), sel.len())
                };
                row.push(if sel.is_empty() { "–".to_string() } else { format!("{}; {median}", success_cell(&sel)) });
                let xv = x.parse().unwrap_or(f64::NAN);
                acc_points.push((xv, numbers(&sel, "test_accuracy_at_best_validation")));
                iter_points.push((xv, reached));
            }
            acc_series.push(Series { label: name.to_string(), points: acc_points });
            iter_series.push(Series { label: name.to_string(), points: iter_points });
        }
        report.tables.insert(format!("dms_a3_{sweep}"), table(&header, &rows));
        report.figures.extend(plot_series_within(
            dir,
            &format!("figa3_{sweep}_accuracy"),
            &format!("DMS, recurrent, 100 neurons: test accuracy against {label}"),
            (label, "test accuracy (model selected on validation)"),
            &acc_series,
            (0.0, 1.0),
        )?);
        report.figures.extend(plot_boxes(
            dir,
            &format!("figa3_{sweep}_iterations"),
            "DMS: iterations to 95 % training accuracy (runs that reached it)",
            (label, "iterations (10-iteration moving average ≥ 0.95)"),
            &iter_series,
        )?);
    }
    Ok(())
}

/// Table 4: per topology and initial mean mu, the first layer's input synapses
/// by channel group, and the accuracy after the resets.
fn tau_init(r: &Results, report: &mut Report) {
    let header: Vec<String> = [
        "topology",
        "μ (ms)",
        "runs",
        "accuracy",
        "mean finite τ cue / noise (ms)",
        "τ of mean decay cue (ms, % vs μ)",
        "τ of mean decay noise (ms, % vs μ)",
        "median τ cue / noise (ms)",
        "decays at 1 cue / noise",
        "> 700 ms: input synapses",
        "accuracy, those reset to μ",
        "accuracy, all learnable > 700 ms reset to μ",
        "accuracy, input synapses reset to own initial",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = Vec::new();
    for rec in ["false", "true"] {
        for mu in r.values("model.tau_init.mean") {
            let sel = r.select(&[("model.layers.0.recurrent", rec), ("model.tau_init.mean", &mu)]);
            if sel.is_empty() {
                continue;
            }
            let mu_ms = mu.parse::<f64>().unwrap_or(f64::NAN) * 1000.0;
            let g = |group: &str, stat: &str| numbers(&sel, &format!("input_tau_at_best_validation.{group}.{stat}"));
            let with_change = |values: Vec<f64>| {
                if values.is_empty() {
                    return "–".to_string();
                }
                let (mean, sd) = mean_sd(&values);
                format!("{mean:.1} ± {sd:.1} ({:+.0} %)", 100.0 * (mean / mu_ms - 1.0))
            };
            let pair = |stat: &str, digits: usize| {
                format!("{} / {}", mean_pm(&g("cue", stat), digits), mean_pm(&g("noise", stat), digits))
            };
            let acc = |column: &str| mean_pm(&numbers(&sel, column), 3);
            rows.push(vec![
                topology(rec).to_string(),
                format!("{mu_ms:.0}"),
                sel.len().to_string(),
                acc("test_accuracy_at_best_validation"),
                pair("mean_ms", 0),
                with_change(g("cue", "mean_decay_tau_ms")),
                with_change(g("noise", "mean_decay_tau_ms")),
                pair("median_ms", 1),
                pair("infinite", 1),
                mean_pm(&numbers(&sel, "eval.clean+reset_first_input_to_mean.reset_fraction"), 3),
                acc("eval.clean+reset_first_input_to_mean.test_accuracy"),
                acc("eval.clean+reset_all_to_mean.test_accuracy"),
                acc("eval.clean+reset_first_input_to_initial.test_accuracy"),
            ]);
        }
    }
    report.tables.insert("dms_tau_init".into(), table(&header, &rows));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_become_panels_with_their_windows() {
        // two readouts of 1 ms steps; steps 2-3 of readout 0 lie in "repeat 1"
        let mut rows = Vec::new();
        for o in 0..2 {
            for t in 1..=4 {
                let window = if o == 0 && (2..=3).contains(&t) { "repeat 1" } else { "" };
                let row: BTreeMap<String, String> = [
                    ("model.kind", "hetsynlif".to_string()),
                    ("output", o.to_string()),
                    ("time_ms", t.to_string()),
                    ("target", (t * 10).to_string()),
                    ("y", (t * 10 + o).to_string()),
                    ("window", window.to_string()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                rows.push(row);
            }
        }
        let traces = Results { rows };
        let (panels, windows) = trace_panels(&traces, &[("model.kind", "hetsynlif")], |o| format!("target {o}"));
        assert_eq!(panels.len(), 2);
        assert_eq!(panels[1].caption, "target 1");
        assert_eq!(panels[1].target, [(1.0, 10.0), (2.0, 20.0), (3.0, 30.0), (4.0, 40.0)]);
        assert_eq!(panels[1].output[0], (1.0, 11.0));
        // the steps ending at 2 and 3 ms cover (1, 3] ms
        assert_eq!(windows, [("repeat 1".to_string(), 1.0..3.0)]);
        assert!(trace_panels(&traces, &[("model.kind", "homneulif")], |o| o.to_string()).0.is_empty());
    }

    #[test]
    fn blocks_are_replaced_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let doc = dir.path().join("r.md");
        std::fs::write(
            &doc,
            "# R\ntext\n<!-- table:a -->\nold\nold\n<!-- end -->\nmore\n<!-- table:b -->\n<!-- end -->\n",
        )
        .unwrap();
        let tables = BTreeMap::from([("a".to_string(), "| x |\n|---|\n| 1 |\n".to_string())]);
        assert_eq!(fill_document(&doc, &tables).unwrap(), ["a"]);
        let text = std::fs::read_to_string(&doc).unwrap();
        assert_eq!(
            text,
            "# R\ntext\n<!-- table:a -->\n| x |\n|---|\n| 1 |\n<!-- end -->\nmore\n<!-- table:b -->\n\
             *No results recorded yet (docs/results has no rows for `b`).*\n<!-- end -->\n"
        );
        // the same tables again: the same text
        fill_document(&doc, &tables).unwrap();
        assert_eq!(std::fs::read_to_string(&doc).unwrap(), text);
        std::fs::write(&doc, "<!-- table:a -->\nno end\n").unwrap();
        assert!(fill_document(&doc, &tables).unwrap_err().to_string().contains("has no <!-- end -->"));
    }

    /// A results file gives its table and figures; the cells count the runs
    /// of each (size, model, topology).
    #[test]
    fn the_neurons_table_comes_from_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results");
        std::fs::create_dir_all(&results).unwrap();
        let mut csv = String::from(
            "experiment,model.layers.0.size,model.kind,model.layers.0.recurrent,seed,test_accuracy_at_best_validation,wall_s,commit\n",
        );
        for (size, kind, rec, seed, acc) in [
            (5, "hetsynlif", "true", 0, 1.0),
            (5, "hetsynlif", "true", 1, 0.5),
            (5, "homneulif", "false", 0, 0.49),
            (20, "hetsynlif", "true", 0, 0.95),
        ] {
            csv.push_str(&format!("dms_neurons,{size},{kind},{rec},{seed},{acc},1.0,abc\n"));
        }
        std::fs::write(results.join("dms_neurons.csv"), csv).unwrap();
        std::fs::write(results.join("pattern.csv"), "experiment,task.noise_rate,seed\n").unwrap();
        let report = build(&results, &dir.path().join("figures")).unwrap();
        assert_eq!(
            report.tables.keys().collect::<Vec<_>>(),
            ["dms_neurons", "headline", "run_counts"],
            "an empty file gives no table"
        );
        let t = &report.tables["dms_neurons"];
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("| hidden neurons | HetSynLIF F | HetSynLIF R | HetNeuLIF F"), "{t}");
        assert!(lines[2].starts_with("| 5 | – | 1/2, 0.750 ± 0.354 |"), "{t}");
        assert!(lines[2].ends_with("| 0/1, 0.490 ± 0.000 | – |"), "{t}");
        assert!(lines[3].starts_with("| 20 | – | 1/1, 0.950 ± 0.000 |"), "{t}");
        assert!(report.figures.iter().all(|f| f.is_file()));
        assert!(report.figures.iter().any(|f| f.ends_with("fig3g_dms_accuracy_recurrent.png")));
    }

    #[test]
    fn success_cells_count_runs_at_90_percent() {
        let rows: Vec<BTreeMap<String, String>> = ["1.0", "0.9", "0.5"]
            .iter()
            .map(|a| BTreeMap::from([("test_accuracy_at_best_validation".to_string(), a.to_string())]))
            .collect();
        let refs: Vec<&BTreeMap<String, String>> = rows.iter().collect();
        assert_eq!(success_cell(&refs), "2/3, 0.800 ± 0.265");
        assert_eq!(success_cell(&[]), "–");
    }
}
