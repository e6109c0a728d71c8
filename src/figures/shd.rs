//! Spiking Heidelberg Digits (paper §4.3): the robustness and time-constant
//! figures, recorded from the runs of `scripts/paper/shd.sh` and drawn from
//! the recorded CSVs.
//!
//! Recorded per run (model.kind, seed), from the `hetsyn eval` CSV of the run's
//! reported checkpoint and from the checkpoint itself:
//!
//! - `shd_deletion.csv`: `experiment,model,delete_prob,seed,test_accuracy,commit`,
//!   one row per deletion probability (the clean test set is p = 0);
//! - `shd_warp.csv`: `experiment,model,log2_alpha,seed,test_accuracy,commit`, one
//!   row per time-warp factor α (spike times × α before binning; the clean test
//!   set is log2 α = 0);
//! - `shd_tau.csv`: `experiment,model,seed,stage,synapses,tau_low_ms,tau_high_ms,count,commit`,
//!   the per-synapse time constants of every learnable per-synapse decay tensor
//!   (HetSynLIF), before training (the network rebuilt from the config's seed)
//!   and after it (the reported checkpoint), counted in 1 ms bins from 0 to
//!   200 ms and one bin from 200 ms to infinity (decay ≥ 1 included). Since
//!   20 ms is a bin edge, the share of time constants above 20 ms is exact.
//!
//! Drawn (`<experiment>_*.{png,svg}` and `<experiment>_table.md`):
//!
//! - `deletion`: test accuracy against the deletion probability, a line per model (Fig. 4);
//! - `warp`: per model, the test accuracy without warp and the mean over the
//!   random warps log2 α ~ U(−0.5, 0.5) (Fig. 4);
//! - `warp_curve`: test accuracy against log2 α, a line per model (every warp: 0, 0.25 and the random ones);
//! - `warp_a4`: per model, without warp and at log2 α = 0.25 (Fig. A4);
//! - `tau_output`: hidden→output synaptic time constants before and after
//!   training, with the share above 20 ms (Fig. 4D);
//! - `tau_layers`: the four other synapse groups, input→hidden 1, hidden 1
//!   recurrent, hidden 1→hidden 2, hidden 2 recurrent (Fig. A5).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{in_paper_order, model_label, GroupedBars, Table};
use crate::io::atomic::write_atomic;
use crate::checkpoint;
use crate::model::ParamKind;
use crate::plot::{
    draw_legend, drawing, mean_sd, plot_series_within, spread_axis, spread_bar, tau_ms, tick, titled, write_figure,
    Figure, Series, CAPTION_SIZE, FAMILY, INITIAL_COLOR, LABEL_SIZE, LEARNED_COLOR, SERIES_COLORS, WIDTH,
};
use crate::train::{initial_network, RunDir};

/// The paper's deletion probabilities (p = 0: the clean test set).
pub const DELETE_PROBS: [f64; 8] = [0.0, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64];
/// The paper's number of random warps, log2 α ~ U(−0.5, 0.5).
pub const RANDOM_WARPS: usize = 20;
/// The warp of Fig. A4.
pub const A4_LOG2_ALPHA: f64 = 0.25;
/// An accuracy in %: error bars end at 0 and 100.
const PERCENT: Option<(f64, f64)> = Some((0.0, 100.0));
/// The threshold of Fig. 4D, ms.
pub const LONG_TAU_MS: f64 = 20.0;
/// Width of the recorded time-constant bins, ms.
pub const TAU_BIN_MS: f64 = 1.0;
/// Time constants from here on share one bin, ms.
pub const TAU_TOP_MS: f64 = 200.0;

pub const DELETION_CSV: &str = "shd_deletion.csv";
pub const WARP_CSV: &str = "shd_warp.csv";
pub const TAU_CSV: &str = "shd_tau.csv";
pub const DELETION_HEADER: [&str; 6] = ["experiment", "model", "delete_prob", "seed", "test_accuracy", "commit"];
pub const WARP_HEADER: [&str; 6] = ["experiment", "model", "log2_alpha", "seed", "test_accuracy", "commit"];
pub const TAU_HEADER: [&str; 9] =
    ["experiment", "model", "seed", "stage", "synapses", "tau_low_ms", "tau_high_ms", "count", "commit"];

/// The synapse group of Fig. 4D.
pub const OUTPUT_SYNAPSES: &str = "hidden_to_output";
/// The four synapse groups of Fig. A5, in the order of the network.
pub const HIDDEN_SYNAPSES: [&str; 4] =
    ["input_to_hidden1", "hidden1_recurrent", "hidden1_to_hidden2", "hidden2_recurrent"];

/// What [`record`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    /// Runs whose rows were added.
    pub recorded: Vec<PathBuf>,
    /// Runs whose rows were there already.
    pub already: usize,
    /// Finished runs without an eval CSV of their reported checkpoint (not recorded).
    pub not_evaluated: Vec<PathBuf>,
}

/// The synapse group of a decay tensor's checkpoint name: `hidden.0.input.decay`
/// → `input_to_hidden1`, `hidden.L.input.decay` → `hiddenL_to_hiddenL+1`,
/// `hidden.L.recurrent.decay` → `hiddenL+1_recurrent`, `readout.decay` → `hidden_to_output`.
pub fn synapse_group(name: &str) -> Result<String> {
    if name == "readout.decay" {
        return Ok(OUTPUT_SYNAPSES.into());
    }
    let parts: Vec<&str> = name.split('.').collect();
    let layer = match parts[..] {
        ["hidden", l, _, "decay"] => l.parse::<usize>().ok(),
        _ => None,
    };
    match (layer, parts.get(2)) {
        (Some(0), Some(&"input")) => Ok("input_to_hidden1".into()),
        (Some(l), Some(&"input")) => Ok(format!("hidden{l}_to_hidden{}", l + 1)),
        (Some(l), Some(&"recurrent")) => Ok(format!("hidden{}_recurrent", l + 1)),
        _ => bail!("decay tensor {name:?}: not a synapse group of this network"),
    }
}

/// A synapse group in words: `hidden layer 1 → hidden layer 2`.
fn synapse_words(group: &str) -> String {
    if group == OUTPUT_SYNAPSES {
        return "hidden → output synapses".into();
    }
    if let Some(rest) = group.strip_suffix("_recurrent") {
        return format!("{} recurrent synapses", rest.replace("hidden", "hidden layer "));
    }
    match group.split_once("_to_") {
        Some((from, to)) => {
            let words = |s: &str| s.replace("hidden", "hidden layer ");
            format!("{} → {} synapses", words(from), words(to))
        }
        None => group.to_string(),
    }
}

/// Counts of time constants per recorded bin: `[k, k + 1)` ms for k < 200, then `[200 ms, ∞]`.
pub fn tau_bins(decays: &[f32], dt: f64) -> Vec<usize> {
    let top = (TAU_TOP_MS / TAU_BIN_MS) as usize;
    let mut counts = vec![0; top + 1];
    for d in decays {
        let tau = tau_ms(*d as f64, dt);
        let k = if tau < TAU_TOP_MS { (tau.max(0.0) / TAU_BIN_MS) as usize } else { top };
        counts[k.min(top)] += 1;
    }
    counts
}

/// `(condition, test accuracy)` of the learned network's rows of an eval CSV.
fn eval_conditions(path: &Path) -> Result<Vec<(String, f64)>> {
    let table = Table::read_any(path)?;
    let mut out = Vec::new();
    for row in &table.rows {
        let condition = table.text(row, "condition")?;
        if condition.contains('+') || condition.starts_with("time_warp_random_mean") {
            continue;
        }
        out.push((condition.to_string(), table.number(row, "test_accuracy")?));
    }
    Ok(out)
}

/// The `git_commit` of a run's summary.json.
fn run_commit(run: &RunDir) -> Result<String> {
    let path = run.summary();
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?,
    )
    .with_context(|| format!("{} is not valid JSON", path.display()))?;
    Ok(json.get("git_commit").and_then(|v| v.as_str()).unwrap_or("unknown").to_string())
}

/// Adds to the CSVs in `results` the rows of every finished, evaluated run below
/// `runs_root` that they do not hold yet (by experiment, model and seed), with
/// `experiment` as the first column.
pub fn record(runs_root: &Path, results: &Path, experiment: &str) -> Result<Recorded> {
    std::fs::create_dir_all(results).with_context(|| format!("cannot create {}", results.display()))?;
    let mut deletion = Table::read_or_new(&results.join(DELETION_CSV), &DELETION_HEADER)?;
    let mut warp = Table::read_or_new(&results.join(WARP_CSV), &WARP_HEADER)?;
    let mut tau = Table::read_or_new(&results.join(TAU_CSV), &TAU_HEADER)?;
    let mut done = Recorded::default();
    for run in crate::summarize::collect(runs_root)? {
        let at = || format!("run {}", run.dir.display());
        let model = run.config.get("model.kind").with_context(|| format!("{}: config.toml has no model.kind", at()))?;
        let seed = run.config.get("seed").with_context(|| format!("{}: config.toml has no seed", at()))?;
        let key = [("experiment", experiment), ("model", model.as_str()), ("seed", seed.as_str())];
        // only HetSynLIF has per-synapse time constants: the other models have no tau rows to record
        let synaptic = model == "hetsynlif";
        let have = [deletion.contains(&key)?, warp.contains(&key)?, !synaptic || tau.contains(&key)?];
        if have.iter().all(|h| *h) {
            done.already += 1;
            continue;
        }
        let run_dir = RunDir::at(&run.dir);
        let Some(eval_csv) = run_dir.reported_eval_csv() else {
            done.not_evaluated.push(run.dir.clone());
            continue;
        };
        let commit = run_commit(&run_dir).with_context(at)?;
        let conditions = eval_conditions(&eval_csv).with_context(at)?;
        let row = |x: String, accuracy: f64| {
            vec![experiment.into(), model.clone(), x, seed.clone(), accuracy.to_string(), commit.clone()]
        };
        if !have[0] {
            for (condition, accuracy) in &conditions {
                let p = match condition.as_str() {
                    "clean" => Some("0".to_string()),
                    c => c.strip_prefix("delete_prob=").map(String::from),
                };
                deletion.rows.extend(p.map(|p| row(p, *accuracy)));
            }
        }
        if !have[1] {
            for (condition, accuracy) in &conditions {
                let log2_alpha = match condition.as_str() {
                    "clean" => Some("0".to_string()),
                    c => match c.strip_prefix("time_warp=") {
                        Some(a) => Some(
                            a.parse::<f64>()
                                .with_context(|| format!("{}: condition {c:?}", eval_csv.display()))?
                                .log2()
                                .to_string(),
                        ),
                        None => None,
                    },
                };
                warp.rows.extend(log2_alpha.map(|l| row(l, *accuracy)));
            }
        }
        if !have[2] {
            let path = run_dir.reported_checkpoint()?;
            let ckpt = checkpoint::load(&path)?;
            let net = &ckpt.network;
            let initial = initial_network(&ckpt.config, net.inputs(), net.outputs());
            for ((info, after), (start_info, before)) in net.params().into_iter().zip(initial.params()) {
                if info.kind != ParamKind::Decay || info.shape.len() != 2 {
                    continue;
                }
                if start_info != info {
                    bail!("{}: the network rebuilt from its config does not have its shapes", path.display());
                }
                let group = synapse_group(&info.name)?;
                for (stage, decays) in [("before", before), ("after", after)] {
                    for (k, count) in tau_bins(decays, net.dt()).into_iter().enumerate().filter(|(_, c)| *c > 0) {
                        let low = k as f64 * TAU_BIN_MS;
                        let high = if low >= TAU_TOP_MS { "inf".to_string() } else { (low + TAU_BIN_MS).to_string() };
                        tau.rows.push(vec![
                            experiment.into(),
                            model.clone(),
                            seed.clone(),
                            stage.into(),
                            group.clone(),
                            low.to_string(),
                            high,
                            count.to_string(),
                            commit.clone(),
                        ]);
                    }
                }
            }
        }
        done.recorded.push(run.dir.clone());
    }
    if !done.recorded.is_empty() {
        deletion.write()?;
        warp.write()?;
        tau.write()?;
    }
    Ok(done)
}

/// Per x value (ascending), the runs' values.
type Points = Vec<(f64, Vec<f64>)>;

/// Per model (paper order), per x value (ascending), the runs' values: the
/// `value` column of `table`'s rows of `experiment`, grouped by `model` and `x`.
fn by_model_and_x(table: &Table, experiment: &str, x: &str, value: &str) -> Result<Vec<(String, Points)>> {
    let rows = table.of_experiment(experiment)?;
    if rows.is_empty() {
        bail!("{}: no rows of experiment {experiment:?}", table.path.display());
    }
    let mut grouped: BTreeMap<String, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for row in rows {
        let key = table.number(row, x)?;
        let entry = grouped.entry(table.text(row, "model")?.to_string()).or_default();
        // order by value; -0 and 0 alike
        entry.entry((key + 0.0).to_bits()).or_default().push(table.number(row, value)?);
    }
    let models = in_paper_order(grouped.keys().map(String::as_str));
    Ok(models
        .into_iter()
        .map(|m| {
            let mut points: Vec<(f64, Vec<f64>)> =
                grouped[&m].iter().map(|(bits, v)| (f64::from_bits(*bits), v.clone())).collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (m, points)
        })
        .collect())
}

/// Per model and seed: the accuracy without warp, at log2 α = 0.25, and at each random warp.
#[derive(Debug, Default, Clone)]
struct WarpRun {
    clean: Option<f64>,
    a4: Option<f64>,
    random: Vec<f64>,
}

fn warp_runs(table: &Table, experiment: &str) -> Result<Vec<(String, Vec<WarpRun>)>> {
    let rows = table.of_experiment(experiment)?;
    if rows.is_empty() {
        bail!("{}: no rows of experiment {experiment:?}", table.path.display());
    }
    let mut runs: BTreeMap<String, BTreeMap<String, WarpRun>> = BTreeMap::new();
    for row in rows {
        let (l, accuracy) = (table.number(row, "log2_alpha")?, table.number(row, "test_accuracy")?);
        let run = runs
            .entry(table.text(row, "model")?.to_string())
            .or_default()
            .entry(table.text(row, "seed")?.to_string())
            .or_default();
        if l == 0.0 {
            run.clean = Some(accuracy);
        } else if (l - A4_LOG2_ALPHA).abs() < 1e-9 {
            run.a4 = Some(accuracy);
        } else {
            run.random.push(accuracy);
        }
    }
    let models = in_paper_order(runs.keys().map(String::as_str));
    Ok(models.into_iter().map(|m| (m.clone(), runs[&m].values().cloned().collect())).collect())
}

/// Pooled time-constant histograms of one model's synapse group, before and after training.
#[derive(Debug, Clone, PartialEq)]
struct TauPanel {
    caption: String,
    /// Counts per recorded bin, summed over runs (the last bin: ≥ [`TAU_TOP_MS`]).
    before: Vec<f64>,
    after: Vec<f64>,
    runs: usize,
}

impl TauPanel {
    fn total(counts: &[f64]) -> f64 {
        counts.iter().sum()
    }

    /// The share (%) of time constants above [`LONG_TAU_MS`].
    fn above(counts: &[f64]) -> f64 {
        let from = (LONG_TAU_MS / TAU_BIN_MS) as usize;
        100.0 * counts[from..].iter().sum::<f64>() / Self::total(counts).max(1.0)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = area.titled(&self.caption, (FAMILY, CAPTION_SIZE)).map_err(drawing)?;
        let top_bin = self.before.len() - 1;
        let share = |counts: &[f64]| -> Vec<f64> {
            let total = Self::total(counts).max(1.0);
            counts.iter().map(|c| 100.0 * c / total).collect()
        };
        let (before, after) = (share(&self.before), share(&self.after));
        // the axis ends past the last occupied finite bin (at least 30 ms, to show the 20 ms mark)
        let last = (0..top_bin).rev().find(|k| self.before[*k] + self.after[*k] > 0.0).unwrap_or(0);
        let x_max = (((last + 1) as f64 * TAU_BIN_MS / 10.0).ceil() * 10.0).max(30.0);
        let y_max = before[..top_bin].iter().chain(&after[..top_bin]).fold(0.0f64, |a, b| a.max(*b)) * 1.15;
        let mut chart = ChartBuilder::on(&area)
            .margin(8)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max.max(1.0))
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc("synaptic time constant τ (ms)")
            .y_desc(format!("share of synapses per {} ms (%)", tick(TAU_BIN_MS)))
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .label_style((FAMILY, LABEL_SIZE))
            .axis_desc_style((FAMILY, LABEL_SIZE))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(drawing)?;
        let bin = |k: usize| (k as f64 * TAU_BIN_MS, (k + 1) as f64 * TAU_BIN_MS);
        let fill = LEARNED_COLOR.mix(0.55);
        let bars = after[..top_bin].iter().enumerate().filter(|(_, v)| **v > 0.0).map(|(k, v)| {
            let (lo, hi) = bin(k);
            Rectangle::new([(lo, 0.0), (hi.min(x_max), *v)], fill.filled())
        });
        chart
            .draw_series(bars)
            .map_err(drawing)?
            .label(format!("after training: {:.1} % above {} ms", Self::above(&self.after), tick(LONG_TAU_MS)))
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], fill.filled()));
        let mut outline = vec![(0.0, 0.0)];
        for (k, v) in before[..top_bin].iter().enumerate() {
            let (lo, hi) = bin(k);
            if lo >= x_max {
                break;
            }
            outline.push((lo, *v));
            outline.push((hi.min(x_max), *v));
        }
        outline.push((x_max, 0.0));
        chart
            .draw_series([PathElement::new(outline, INITIAL_COLOR.stroke_width(2))])
            .map_err(drawing)?
            .label(format!("before training: {:.1} % above {} ms", Self::above(&self.before), tick(LONG_TAU_MS)))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], INITIAL_COLOR.stroke_width(2)));
        let mark = [(LONG_TAU_MS, 0.0), (LONG_TAU_MS, y_max.max(1.0))];
        chart.draw_series([PathElement::new(mark, BLACK.mix(0.6).stroke_width(1))]).map_err(drawing)?;
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}

/// Test accuracy against log2 α, a line per model through the mean over runs at each
/// warp, with a bar of ± one sd clipped to 0–100 %; log2 α on a linear axis.
struct WarpCurve {
    title: String,
    /// `(model label, per log2 α the runs' accuracies in %)`.
    series: Vec<(String, Points)>,
}

impl Figure for WarpCurve {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, &self.title)?;
        let (area, legend) = area.split_horizontally(WIDTH as i32 * 3 / 4);
        let y = spread_axis(self.series.iter().flat_map(|(_, p)| p.iter().map(|(_, v)| &v[..])), PERCENT);
        let mut chart = ChartBuilder::on(&area)
            .caption(
                "mean ± sd over runs at each warp; log2 α = 0: no warp, 0.25: Fig. A4, the others drawn from U(−0.5, 0.5)",
                (FAMILY, LABEL_SIZE),
            )
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.55f64..0.55, y)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc("log2 of the time-warp factor α (spike times × α before binning)")
            .y_desc("test accuracy (%)")
            // the axis's own 0 comes as ±1e-16
            .x_label_formatter(&|v| tick(if v.abs() < 1e-9 { 0.0 } else { *v }))
            .y_label_formatter(&|v| tick(*v))
            .label_style((FAMILY, LABEL_SIZE))
            .axis_desc_style((FAMILY, LABEL_SIZE))
            .draw()
            .map_err(drawing)?;
        for (k, (label, points)) in self.series.iter().enumerate() {
            let color = SERIES_COLORS[k % SERIES_COLORS.len()];
            let y = 40 + 28 * k as i32;
            legend
                .draw(&PathElement::new(vec![(0, y), (28, y)], color.stroke_width(3)))
                .and_then(|()| legend.draw(&Text::new(label.clone(), (36, y - 8), (FAMILY, LABEL_SIZE))))
                .map_err(drawing)?;
            let mut means = Vec::new();
            for (x, values) in points.iter().filter(|(_, v)| !v.is_empty()) {
                let (mean, sd) = mean_sd(values);
                let (low, high) = spread_bar(mean, sd, PERCENT);
                chart
                    .draw_series([PathElement::new([(*x, low), (*x, high)], color.stroke_width(1))])
                    .map_err(drawing)?;
                chart.draw_series([Circle::new((*x, mean), 4, color.filled())]).map_err(drawing)?;
                means.push((*x, mean));
            }
            chart.draw_series(LineSeries::new(means, color.stroke_width(2))).map_err(drawing)?;
        }
        Ok(())
    }
}

struct TauFigure {
    title: String,
    panels: Vec<TauPanel>,
}

impl Figure for TauFigure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, &self.title)?;
        let columns = if self.panels.len() > 2 { 2 } else { 1 };
        let areas = area.split_evenly((self.panels.len().div_ceil(columns), columns));
        for (panel, area) in self.panels.iter().zip(&areas) {
            panel.draw(area)?;
        }
        Ok(())
    }
}

/// Per (model, synapse group): pooled histograms over the runs of `experiment`.
fn tau_panels(table: &Table, experiment: &str) -> Result<BTreeMap<(String, String), TauPanel>> {
    let bins = (TAU_TOP_MS / TAU_BIN_MS) as usize + 1;
    let mut panels: BTreeMap<(String, String), (TauPanel, std::collections::BTreeSet<String>)> = BTreeMap::new();
    for row in table.of_experiment(experiment)? {
        let model = table.text(row, "model")?.to_string();
        let group = table.text(row, "synapses")?.to_string();
        let low = table.number(row, "tau_low_ms")?;
        let count = table.number(row, "count")?;
        let k = (low / TAU_BIN_MS).round();
        if !(k >= 0.0 && (k as usize) < bins) {
            bail!(
                "{}: tau_low_ms {low} is not a bin edge of {} ms up to {} ms",
                table.path.display(),
                TAU_BIN_MS,
                TAU_TOP_MS
            );
        }
        let (panel, seeds) = panels.entry((model.clone(), group.clone())).or_insert_with(|| {
            let panel = TauPanel { caption: String::new(), before: vec![0.0; bins], after: vec![0.0; bins], runs: 0 };
            (panel, Default::default())
        });
        seeds.insert(table.text(row, "seed")?.to_string());
        match table.text(row, "stage")? {
            "before" => panel.before[k as usize] += count,
            "after" => panel.after[k as usize] += count,
            other => bail!("{}: stage {other:?}: expected before or after", table.path.display()),
        }
    }
    Ok(panels
        .into_iter()
        .map(|((model, group), (mut panel, seeds))| {
            panel.runs = seeds.len();
            let per_run = TauPanel::total(&panel.after) / panel.runs.max(1) as f64;
            let beyond = 100.0 * panel.after[bins - 1] / TauPanel::total(&panel.after).max(1.0);
            panel.caption = format!(
                "{}, {}: {} per run × {} runs{}",
                model_label(&model),
                synapse_words(&group),
                per_run.round(),
                panel.runs,
                if beyond > 0.0 {
                    format!("; {beyond:.1} % after training ≥ {} ms (off the axis)", tick(TAU_TOP_MS))
                } else {
                    String::new()
                }
            );
            ((model, group), panel)
        })
        .collect())
}

/// Mean ± sd as text (`–` for no values), of values in [0, 1] shown in %.
fn percent(values: &[f64]) -> String {
    if values.is_empty() {
        return "–".into();
    }
    let (mean, sd) = mean_sd(values);
    format!("{:.1} ± {:.1}", 100.0 * mean, 100.0 * sd)
}

/// Draws the SHD figures of `experiment` from the CSVs in `results` into `out`;
/// returns the files written.
pub fn draw(results: &Path, out: &Path, experiment: &str) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut written = Vec::new();
    let mut table =
        format!("# SHD ({experiment}): recorded runs\n\nTest accuracy, mean ± sd over runs (%); n: runs.\n\n");

    // Fig. 4: accuracy against the deletion probability
    let deletion = Table::read(&results.join(DELETION_CSV), &DELETION_HEADER)?;
    let per_model = by_model_and_x(&deletion, experiment, "delete_prob", "test_accuracy")?;
    let series: Vec<Series> = per_model
        .iter()
        .map(|(m, points)| Series {
            label: model_label(m),
            points: points.iter().map(|(p, v)| (*p, v.iter().map(|a| 100.0 * a).collect())).collect(),
        })
        .collect();
    let title = format!("SHD: input spikes deleted at random ({experiment})");
    let labels = ("probability p of deleting each input spike", "test accuracy (%)");
    written.extend(plot_series_within(out, &format!("{experiment}_deletion"), &title, labels, &series, (0.0, 100.0))?);
    let ps: Vec<f64> = {
        let mut ps: Vec<f64> = per_model.iter().flat_map(|(_, points)| points.iter().map(|p| p.0)).collect();
        ps.sort_by(f64::total_cmp);
        ps.dedup();
        ps
    };
    table.push_str("## Spike deletion (Fig. 4)\n\n| model | n |");
    for p in &ps {
        table.push_str(&format!(" p = {} |", tick(*p)));
    }
    table.push_str(&format!("\n|---|---|{}\n", "---|".repeat(ps.len())));
    for (m, points) in &per_model {
        let n = points.iter().map(|p| p.1.len()).max().unwrap_or(0);
        table.push_str(&format!("| {} | {n} |", model_label(m)));
        for p in &ps {
            let values = points.iter().find(|q| q.0 == *p).map(|q| q.1.clone()).unwrap_or_default();
            table.push_str(&format!(" {} |", percent(&values)));
        }
        table.push('\n');
    }

    // Fig. 4 and A4: time warps
    let warp = Table::read(&results.join(WARP_CSV), &WARP_HEADER)?;
    let runs = warp_runs(&warp, experiment)?;
    let random_counts: Vec<usize> = runs.iter().flat_map(|(_, r)| r.iter().map(|r| r.random.len())).collect();
    let (fewest, most) =
        (random_counts.iter().min().copied().unwrap_or(0), random_counts.iter().max().copied().unwrap_or(0));
    let counted = if fewest == most { format!("{most}") } else { format!("{fewest}–{most}") };
    let column = |f: &dyn Fn(&WarpRun) -> Option<f64>, r: &[WarpRun]| -> Vec<f64> {
        r.iter().filter_map(f).map(|a| 100.0 * a).collect()
    };
    let clean = |r: &WarpRun| r.clean;
    let random_mean =
        |r: &WarpRun| (!r.random.is_empty()).then(|| r.random.iter().sum::<f64>() / r.random.len() as f64);
    let a4 = |r: &WarpRun| r.a4;
    // per model, without warp and under a warp (the run's figure from `warped`)
    let mut warp_figure = |stem: &str, title: String, warped: String, select: &dyn Fn(&WarpRun) -> Option<f64>| {
        let bars = ["no warp (α = 1)".to_string(), warped];
        let categories: Vec<(String, Vec<Vec<f64>>)> =
            runs.iter().map(|(m, r)| (model_label(m), vec![column(&clean, r), column(select, r)])).collect();
        let figure = GroupedBars {
            title: &title,
            y_label: "test accuracy (%)",
            bars: &bars,
            categories: &categories,
            valid: (0.0, 100.0),
        };
        written.extend(write_figure(out, &format!("{experiment}_{stem}"), &figure)?);
        anyhow::Ok(())
    };
    warp_figure(
        "warp",
        format!("SHD: spike times × α before binning ({experiment})"),
        format!("mean over {counted} random warps, log2 α ~ U(−0.5, 0.5)"),
        &random_mean,
    )?;
    warp_figure(
        "warp_a4",
        format!("SHD: spike times stretched by α = 2^{} ({experiment})", tick(A4_LOG2_ALPHA)),
        format!("log2 α = {} (α = {:.3})", tick(A4_LOG2_ALPHA), A4_LOG2_ALPHA.exp2()),
        &a4,
    )?;
    let curve = by_model_and_x(&warp, experiment, "log2_alpha", "test_accuracy")?
        .into_iter()
        .map(|(m, points)| {
            (model_label(&m), points.into_iter().map(|(x, v)| (x, v.iter().map(|a| 100.0 * a).collect())).collect())
        })
        .collect();
    let title = format!("SHD: test accuracy against the time warp ({experiment})");
    written.extend(write_figure(out, &format!("{experiment}_warp_curve"), &WarpCurve { title, series: curve })?);
    table.push_str(&format!(
        "\n## Time warps (Fig. 4, A4)\n\n| model | n | no warp | mean over {counted} random warps | log2 α = {} |\n|---|---|---|---|---|\n",
        tick(A4_LOG2_ALPHA)
    ));
    for (m, r) in &runs {
        let unit = |v: Vec<f64>| v.iter().map(|a| a / 100.0).collect::<Vec<f64>>();
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            model_label(m),
            r.len(),
            percent(&unit(column(&clean, r))),
            percent(&unit(column(&random_mean, r))),
            percent(&unit(column(&a4, r)))
        ));
    }

    // Fig. 4D and A5: the time constants
    let tau = Table::read(&results.join(TAU_CSV), &TAU_HEADER)?;
    let panels = tau_panels(&tau, experiment)?;
    let models = in_paper_order(panels.keys().map(|(m, _)| m.as_str()));
    let output: Vec<TauPanel> =
        models.iter().filter_map(|m| panels.get(&(m.clone(), OUTPUT_SYNAPSES.to_string())).cloned()).collect();
    let layers: Vec<TauPanel> = models
        .iter()
        .flat_map(|m| HIDDEN_SYNAPSES.into_iter().filter_map(|g| panels.get(&(m.clone(), g.to_string())).cloned()))
        .collect();
    table.push_str(&format!(
        "\n## Synaptic time constants (Fig. 4D, A5)\n\nShare above {} ms, pooled over runs.\n\n| model | synapses | runs | before training | after training |\n|---|---|---|---|---|\n",
        tick(LONG_TAU_MS)
    ));
    let in_order = |g: &str| HIDDEN_SYNAPSES.iter().chain([&OUTPUT_SYNAPSES]).position(|h| *h == g);
    let mut rows: Vec<(&(String, String), &TauPanel)> = panels.iter().collect();
    rows.sort_by_key(|((m, g), _)| (models.iter().position(|n| n == m), in_order(g).unwrap_or(usize::MAX), g.clone()));
    for ((m, g), panel) in rows {
        table.push_str(&format!(
            "| {} | {} | {} | {:.1} % | {:.1} % |\n",
            model_label(m),
            synapse_words(g),
            panel.runs,
            TauPanel::above(&panel.before),
            TauPanel::above(&panel.after)
        ));
    }
    if output.is_empty() {
        // no HetSynLIF run recorded: nothing to draw of Fig. 4D and A5
        table.push_str("\nNo per-synapse time constants recorded (no HetSynLIF run): Fig. 4D and A5 not drawn.\n");
    } else {
        let title = format!("SHD: hidden → output synaptic time constants before and after training ({experiment})");
        written.extend(write_figure(out, &format!("{experiment}_tau_output"), &TauFigure { title, panels: output })?);
    }
    if !layers.is_empty() {
        let title =
            format!("SHD: synaptic time constants of the hidden layers before and after training ({experiment})");
        written.extend(write_figure(out, &format!("{experiment}_tau_layers"), &TauFigure { title, panels: layers })?);
    }
    let md = out.join(format!("{experiment}_table.md"));
    write_atomic(&md, table.as_bytes())?;
    written.push(md);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synapse_groups_of_the_shd_network() {
        let names = [
            ("hidden.0.input.decay", "input_to_hidden1"),
            ("hidden.0.recurrent.decay", "hidden1_recurrent"),
            ("hidden.1.input.decay", "hidden1_to_hidden2"),
            ("hidden.1.recurrent.decay", "hidden2_recurrent"),
            ("readout.decay", "hidden_to_output"),
        ];
        for (name, group) in names {
            assert_eq!(synapse_group(name).unwrap(), group);
        }
        assert!(synapse_group("hidden.x.input.decay").is_err());
        assert_eq!(synapse_words("hidden1_to_hidden2"), "hidden layer 1 → hidden layer 2 synapses");
        assert_eq!(synapse_words("hidden2_recurrent"), "hidden layer 2 recurrent synapses");
    }

    #[test]
    fn tau_bins_put_20_ms_above_and_infinity_last() {
        let dt = 0.001;
        let decay = |ms: f64| (-dt * 1000.0 / ms).exp() as f32;
        let counts = tau_bins(&[decay(5.5), decay(19.5), decay(20.5), decay(250.0), 1.0, 0.0], dt);
        assert_eq!(counts.len(), 201);
        assert_eq!((counts[0], counts[5], counts[19], counts[20], counts[200]), (1, 1, 1, 1, 2));
        let shares: Vec<f64> = counts.iter().map(|c| *c as f64).collect();
        assert!((TauPanel::above(&shares) - 50.0).abs() < 1e-9, "{}", TauPanel::above(&shares));
    }
}
