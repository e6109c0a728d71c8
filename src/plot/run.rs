//! The figures of one run directory ([`plot_run`]): learning curves, learned
//! versus initial time constants, a spike raster of one test sample ([`SampleRun`]
//! simulates the network for it) and, for regression tasks, its target and
//! output, with the data behind that plot (`plots/output.csv`).

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::draw::{
    category_label, draw_legend, drawing, finite_range, padded, tick, titled, write_figure, Figure, LogAxis,
    CAPTION_SIZE, FAMILY, INITIAL_COLOR, LABEL_SIZE, LEARNED_COLOR, SERIES_COLORS, WIDTH,
};
use crate::io::atomic::write_atomic;
use crate::model::{layer_name, Network, ParamKind, Part, Storage};
use crate::tasks::{self, Sample, Target};
use crate::train::evaluate::Trained;
use crate::train::metrics::read_metrics;
use crate::train::run::RunDir;
use crate::train::tau_stats::tau_ms;

const TRAIN_COLOR: RGBColor = RGBColor(31, 119, 180);
const VALIDATION_COLOR: RGBColor = RGBColor(255, 127, 14);
const TEST_COLOR: RGBColor = RGBColor(44, 160, 44);
/// Decays that training does not change.
const FIXED_COLOR: RGBColor = RGBColor(110, 110, 110);
/// Shading of a task's marked windows (cues, repeats).
const WINDOW_COLOR: RGBColor = RGBColor(255, 190, 60);
const SPIKE_COLOR: RGBColor = RGBColor(20, 20, 20);
/// At most this many readouts get a panel in `output`.
const MAX_OUTPUT_PANELS: usize = 6;

/// The files [`plot_run`] wrote and the checkpoint it drew them from.
#[derive(Debug, Clone)]
pub struct Plotted {
    pub checkpoint: PathBuf,
    pub files: Vec<PathBuf>,
}

/// Writes every plot of the run in `run_dir` (which holds `metrics.csv` and a
/// checkpoint, see [`RunDir::selected_checkpoint`]) into `run_dir/plots/` and returns the
/// files written. Fails, naming the file, when an input is missing or
/// unreadable; nothing is written then.
pub fn plot_run(run_dir: &Path) -> Result<Plotted> {
    let run_dir = RunDir::at(run_dir);
    let metrics = Metrics::read(&run_dir.metrics())?;
    let checkpoint_path = run_dir.selected_checkpoint()?;
    let Trained { checkpoint: ckpt, task, .. } = Trained::load(&checkpoint_path, None)?;
    let config = &ckpt.config;
    let network = &ckpt.network;
    // "best checkpoint", "last checkpoint"
    let which = format!(
        "{} checkpoint (step {})",
        checkpoint_path.file_stem().and_then(|s| s.to_str()).unwrap_or("the"),
        ckpt.step
    );
    let initial = crate::train::initial_network(config, network.inputs(), network.outputs());

    let sample = task.test().first().ok_or_else(|| {
        anyhow!("checkpoint {}: its task has no test samples to draw a raster of", checkpoint_path.display())
    })?;

    let title = format!("{} ({:?}, seed {})", config.name, config.model.kind, config.seed).to_lowercase();
    let learning = LearningCurves::new(&metrics, format!("learning curves: {title}"));
    let trial_ms = task.shape().steps as f64 * config.model.dt * 1000.0;
    let decays = DecayHistograms::new(
        network,
        &initial,
        config.model.dt,
        trial_ms,
        config.model.frozen_decay_fraction,
        format!("time constants: {title}, {which}"),
    );
    let step_s = task.step_seconds().unwrap_or(config.model.dt);
    let run = SampleRun::new(network, step_s, sample)?;
    let readout = &config.model.readout;
    let prediction = readout.loss.predict(&run.y, run.steps, run.outputs, readout.skip_steps);
    let marks = TrialMarks::of(task.as_ref());
    let raster =
        run.raster(trial_title(&sample.target, prediction, &task.class_names()), format!("{title}, {which}"), &marks);
    let output = run.output(format!("output of test sample 0: {title}, {which}"), &marks);

    let dir = run_dir.plots();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    written.extend(write_figure(&dir, "learning_curves", &learning)?);
    written.extend(write_figure(&dir, "decay_hist", &decays)?);
    written.extend(write_figure(&dir, "raster", &raster)?);
    if let Some(output) = output {
        written.extend(write_figure(&dir, "output", &output)?);
        let csv = dir.join("output.csv");
        write_atomic(&csv, run.output_csv(&marks)?.as_bytes())?;
        written.push(csv);
    }
    Ok(Plotted { checkpoint: checkpoint_path, files: written })
}

/// Time constants of a set of decays, split into finite positive ones and the
/// counts that a log axis cannot show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Taus {
    /// Finite, positive time constants, ms.
    pub finite_ms: Vec<f64>,
    /// Decays >= 1 (tau = infinity).
    pub infinite: usize,
    /// Decays <= 0 (tau = 0).
    pub zero: usize,
}

impl Taus {
    pub fn of<F: Copy + Into<f64>>(decays: &[F], dt: f64) -> Taus {
        let mut taus = Taus::default();
        for d in decays {
            let tau = tau_ms((*d).into(), dt);
            if tau == f64::INFINITY {
                taus.infinite += 1;
            } else if tau <= 0.0 {
                taus.zero += 1;
            } else {
                taus.finite_ms.push(tau);
            }
        }
        taus
    }
}

/// `bins + 1` edges spaced evenly in log scale from `lo` to `hi` (`0 < lo`); a
/// single value (`lo == hi`) gets a bin range a factor 1.25 wide either side.
pub fn log_bins(lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    assert!(lo > 0.0 && hi >= lo && bins > 0, "log_bins({lo}, {hi}, {bins})");
    let (lo, hi) = if hi > lo * (1.0 + 1e-9) { (lo, hi) } else { (lo / 1.25, hi * 1.25) };
    let (a, b) = (lo.ln(), hi.ln());
    let mut edges: Vec<f64> = (0..=bins).map(|k| (a + (b - a) * k as f64 / bins as f64).exp()).collect();
    edges[0] = lo;
    edges[bins] = hi;
    edges
}

/// Counts of `values` per bin of `edges` (bins `[e_k, e_k+1)`, the last one
/// closed); values outside the edges are not counted.
pub fn bin_counts(values: &[f64], edges: &[f64]) -> Vec<usize> {
    let bins = edges.len().saturating_sub(1);
    let mut counts = vec![0; bins];
    if bins == 0 {
        return counts;
    }
    for &v in values {
        if !(v >= edges[0] && v <= edges[bins]) {
            continue;
        }
        let k = edges.partition_point(|e| *e <= v).clamp(1, bins) - 1;
        counts[k] += 1;
    }
    counts
}

// ---------------------------------------------------------------------------
// inputs

/// The columns of `metrics.csv` that are plotted, by header name.
struct Metrics {
    step: Vec<f64>,
    /// `(label, colour, values)` of train, validation and test loss, those present.
    loss: Vec<(&'static str, RGBColor, Vec<f64>)>,
    /// The same of the accuracies (none for a run that logs no accuracy).
    accuracy: Vec<(&'static str, RGBColor, Vec<f64>)>,
}

impl Metrics {
    /// The loss and accuracy series of a metrics.csv ([`read_metrics`]).
    fn read(path: &Path) -> Result<Metrics> {
        let rows = read_metrics(path)?;
        let at = || format!("metrics file {}", path.display());
        let series = [("train", TRAIN_COLOR), ("validation", VALIDATION_COLOR), ("test", TEST_COLOR)];
        let columns = |suffix: &str| -> Vec<(&'static str, RGBColor, Vec<f64>)> {
            series
                .iter()
                .map(|(s, c)| {
                    let column = format!("{s}_{suffix}");
                    (*s, *c, rows.iter().map(|r| r.figure(&column).unwrap_or(f64::NAN)).collect::<Vec<f64>>())
                })
                .filter(|(_, _, values)| values.iter().any(|v| v.is_finite()))
                .collect()
        };
        // training's task loss, comparable with validation and test (no regulariser), when logged
        let mut loss = columns("loss");
        let task_loss: Vec<f64> = rows.iter().map(|r| r.train_task_loss).collect();
        if task_loss.iter().any(|v| v.is_finite()) {
            if let Some(train) = loss.iter_mut().find(|(name, _, _)| *name == "train") {
                *train = ("train (task loss)", train.1, task_loss);
            }
        }
        let metrics =
            Metrics { step: rows.iter().map(|r| r.step as f64).collect(), loss, accuracy: columns("accuracy") };
        if metrics.loss.is_empty() {
            bail!("{}: no finite loss value to plot", at());
        }
        Ok(metrics)
    }
}

/// The first test sample run through the network.
struct SampleRun {
    steps: usize,
    dt_ms: f64,
    channels: usize,
    input: Vec<f32>,
    /// `(name, size, recurrent, spikes [steps, size])` of each hidden layer.
    hidden: Vec<(String, usize, bool, Vec<f32>)>,
    outputs: usize,
    /// The readout `y`, `[steps, outputs]`.
    y: Vec<f32>,
    target: Target,
}

impl SampleRun {
    /// `step_s`: the data time of one step, seconds.
    fn new(network: &Network<f32>, step_s: f64, sample: &Sample) -> Result<SampleRun> {
        let channels = network.inputs();
        let input = sample.input.to_dense(channels);
        if input.is_empty() || !input.len().is_multiple_of(channels) {
            bail!("test sample 0 has {} input values, not a multiple of {channels} channels", input.len());
        }
        let steps = input.len() / channels;
        let tape = network.forward(&input[..], steps, Vec::new());
        let hidden = network
            .hidden()
            .iter()
            .zip(&tape.layers)
            .enumerate()
            .map(|(l, (layer, lt))| {
                (layer_name(l, network.layers().len()), layer.size(), layer.is_recurrent(), lt.spikes.clone())
            })
            .collect();
        Ok(SampleRun {
            steps,
            dt_ms: 1000.0 * step_s,
            channels,
            input,
            hidden,
            outputs: network.outputs(),
            y: network.output(&tape).to_vec(),
            target: sample.target.clone(),
        })
    }

    /// The raster of the input and every hidden layer. `subtitle`: the run and
    /// checkpoint; `marks`: the task's channel groups (labelled beside the input
    /// panel) and windows (shaded in every panel).
    fn raster(&self, title: String, subtitle: String, marks: &TrialMarks) -> Raster {
        let duration_s = self.steps as f64 * self.dt_ms / 1000.0;
        let mut panels = Vec::new();
        let max_in = self.input.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let binary = self.input.iter().all(|v| *v == 0.0 || *v == 1.0);
        let events = |values: &[f32], size: usize, scale: f32| -> Vec<(usize, usize, f64)> {
            values
                .iter()
                .enumerate()
                .filter(|(_, v)| **v != 0.0)
                .map(|(k, v)| (k / size, k % size, f64::from((v.abs() / scale).clamp(0.0, 1.0))))
                .collect()
        };
        let input_events = events(&self.input, self.channels, if max_in > 0.0 { max_in } else { 1.0 });
        panels.push(RasterPanel {
            caption: if binary {
                format!(
                    "input: {} channels, {} spikes ({:.1} Hz per channel)",
                    self.channels,
                    input_events.len(),
                    input_events.len() as f64 / (self.channels as f64 * duration_s)
                )
            } else {
                format!("input: {} channels (shade: |value|, max {max_in:.3})", self.channels)
            },
            axis: "channel",
            size: self.channels,
            events: input_events,
            groups: marks.groups.iter().filter(|(_, c)| c.end <= self.channels && !c.is_empty()).cloned().collect(),
        });
        for (name, size, recurrent, spikes) in &self.hidden {
            let events = events(spikes, *size, 1.0);
            let silent = *size - {
                let mut fired = vec![false; *size];
                events.iter().for_each(|(_, j, _)| fired[*j] = true);
                fired.iter().filter(|f| **f).count()
            };
            panels.push(RasterPanel {
                caption: format!(
                    "{name}: {size} neurons{}, {} spikes ({:.1} Hz per neuron, {silent} silent)",
                    if *recurrent { ", recurrent" } else { "" },
                    events.len(),
                    events.len() as f64 / (*size as f64 * duration_s)
                ),
                axis: "neuron",
                size: *size,
                events,
                groups: Vec::new(),
            });
        }
        let windows = self.windows_ms(marks);
        Raster { title, subtitle, steps: self.steps, dt_ms: self.dt_ms, panels, windows }
    }

    /// The task's marked windows in ms, those within the trial.
    fn windows_ms(&self, marks: &TrialMarks) -> Vec<(String, Range<f64>)> {
        marks
            .windows
            .iter()
            .filter(|(_, w)| !w.is_empty() && w.end <= self.steps)
            .map(|(label, w)| (label.clone(), w.start as f64 * self.dt_ms..w.end as f64 * self.dt_ms))
            .collect()
    }

    /// Target and output of each readout, for regression samples only, with the
    /// task's marked windows shaded.
    fn output(&self, title: String, marks: &TrialMarks) -> Option<OutputPlot> {
        let Target::Series(target) = &self.target else { return None };
        let shown = self.outputs.min(MAX_OUTPUT_PANELS);
        let series = |values: &[f32], o: usize| -> Vec<(f64, f64)> {
            (0..self.steps)
                .filter_map(|t| values.get(t * self.outputs + o).map(|v| ((t + 1) as f64 * self.dt_ms, f64::from(*v))))
                .collect()
        };
        let panels = (0..shown)
            .map(|o| OutputPanel {
                caption: format!("output {o}"),
                target: series(target, o),
                output: series(&self.y, o),
            })
            .collect();
        let title = if shown < self.outputs { format!("{title} (first {shown} of {})", self.outputs) } else { title };
        Some(OutputPlot { title, steps: self.steps, dt_ms: self.dt_ms, panels, windows: self.windows_ms(marks) })
    }
}

impl SampleRun {
    /// The data behind `output.png`, one row per readout and step:
    /// `output,time_ms,target,y,window` (time at the end of the step; `window`:
    /// the label of the task's marked window the step lies in, else empty).
    fn output_csv(&self, marks: &TrialMarks) -> Result<String> {
        let Target::Series(target) = &self.target else { bail!("test sample 0 has no target series") };
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(OUTPUT_CSV_COLUMNS)?;
        for o in 0..self.outputs {
            for t in 0..self.steps {
                let window = marks.windows.iter().find(|(_, w)| w.contains(&t)).map_or("", |(label, _)| label);
                let value = |v: &[f32]| v.get(t * self.outputs + o).map_or(String::new(), |v| v.to_string());
                writer.write_record([
                    o.to_string(),
                    ((t + 1) as f64 * self.dt_ms).to_string(),
                    value(target),
                    value(&self.y),
                    window.to_string(),
                ])?;
            }
        }
        Ok(String::from_utf8(writer.into_inner().context("cannot format output.csv")?)?)
    }
}

/// The columns of a run's `plots/output.csv` (see [`SampleRun::output_csv`]).
pub const OUTPUT_CSV_COLUMNS: [&str; 5] = ["output", "time_ms", "target", "y", "window"];

/// What the task says about its trials, for labelling the raster and output plots.
#[derive(Debug, Clone, Default, PartialEq)]
struct TrialMarks {
    /// [`tasks::Task::channel_groups`].
    groups: Vec<(String, Range<usize>)>,
    /// [`tasks::Task::marked_windows`], in steps.
    windows: Vec<(String, Range<usize>)>,
}

impl TrialMarks {
    fn of(task: &dyn tasks::Task) -> TrialMarks {
        TrialMarks { groups: task.channel_groups(), windows: task.marked_windows() }
    }
}

/// The raster's title: the sample, and for a class target its class and the
/// network's prediction, named by `names` where the task names its classes.
fn trial_title(target: &Target, prediction: Option<usize>, names: &[String]) -> String {
    let class = |k: usize| names.get(k).map_or_else(|| k.to_string(), |name| format!("{name} ({k})"));
    match (target, prediction) {
        (Target::Class(c), Some(p)) => format!(
            "spikes of test sample 0: class {}, network predicts {}: {}",
            class(*c),
            class(p),
            if *c == p { "correct" } else { "wrong" }
        ),
        (Target::Class(c), None) => format!("spikes of test sample 0: class {}", class(*c)),
        (Target::Series(_), _) => "spikes of test sample 0".to_string(),
    }
}

/// A labelled, coloured line: `(label, colour, (step, value) points)`.
type Curve = (&'static str, RGBColor, Vec<(f64, f64)>);

struct LearningCurves {
    title: String,
    /// `(label, color, points)` of each loss series with a finite value.
    loss: Vec<Curve>,
    accuracy: Vec<Curve>,
    steps: std::ops::Range<f64>,
}

impl LearningCurves {
    fn new(metrics: &Metrics, title: String) -> LearningCurves {
        let points = |values: &[f64], scale: f64| -> Vec<(f64, f64)> {
            metrics
                .step
                .iter()
                .zip(values)
                .filter(|(s, v)| s.is_finite() && v.is_finite())
                .map(|(s, v)| (*s, *v * scale))
                .collect()
        };
        let keep = |cols: &[(&'static str, RGBColor, Vec<f64>)], scale: f64| {
            cols.iter()
                .map(|(s, c, v)| (*s, *c, points(v, scale)))
                .filter(|(_, _, p)| !p.is_empty())
                .collect::<Vec<_>>()
        };
        let loss = keep(&metrics.loss, 1.0);
        let accuracy = keep(&metrics.accuracy, 100.0);
        let (_, last) = finite_range(metrics.step.iter().copied()).unwrap_or((0.0, 1.0));
        LearningCurves { title, loss, accuracy, steps: 0.0..last.max(1.0) }
    }

    /// A panel's chart, the steps across and `y` up, in the panels' one layout.
    fn chart<'a, DB: DrawingBackend, Y: AsRangedCoord>(
        &self,
        area: &'a DrawingArea<DB, Shift>,
        caption: &str,
        y: Y,
    ) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y::CoordDescType>>> {
        ChartBuilder::on(area)
            .caption(caption, (FAMILY, CAPTION_SIZE))
            .margin(12)
            .margin_right(24)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(self.steps.clone(), y)
            .map_err(drawing)
    }

    fn loss_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let values = || self.loss.iter().flat_map(|(_, _, p)| p.iter().map(|(_, v)| *v));
        let (lo, hi) = finite_range(values()).unwrap_or((0.0, 1.0));
        if lo > 0.0 {
            let (lo, hi) = if hi > lo * 1.01 { (lo / 1.15, hi * 1.15) } else { (lo / 2.0, hi * 2.0) };
            let mut chart = self.chart(area, "loss (log scale)", LogAxis::new(lo, hi))?;
            self.curves(&mut chart, &self.loss, "loss", SeriesLabelPosition::UpperRight)
        } else {
            let mut chart = self.chart(area, "loss", padded(lo, hi))?;
            self.curves(&mut chart, &self.loss, "loss", SeriesLabelPosition::UpperRight)
        }
    }

    fn accuracy_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let mut chart = self.chart(area, "accuracy", -2.0..102.0)?;
        self.curves(&mut chart, &self.accuracy, "accuracy (%)", SeriesLabelPosition::LowerRight)
    }

    fn curves<'a, DB: DrawingBackend + 'a, Y>(
        &self,
        chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
        series: &[Curve],
        y_desc: &str,
        legend: SeriesLabelPosition,
    ) -> Result<()>
    where
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(y_desc)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .label_style((FAMILY, LABEL_SIZE))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(drawing)?;
        for (label, color, points) in series {
            let color = *color;
            chart
                .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)).point_size(3))
                .map_err(drawing)?
                .label(*label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        draw_legend(chart, legend)
    }
}

impl Figure for LearningCurves {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, &self.title)?;
        if self.accuracy.is_empty() {
            return self.loss_panel(&area);
        }
        let (left, right) = area.split_horizontally(WIDTH / 2);
        self.loss_panel(&left)?;
        self.accuracy_panel(&right)
    }
}

/// Time constants longer than this many trial lengths get a bar of their own
/// beside the log axis (such a current leaks less than 10 % over a trial), so
/// that a few decays next to 1 (τ up to 1e8 ms in f32) do not stretch the axis.
const LONG_TRIALS: f64 = 10.0;

/// One decay tensor of a network: its checkpoint name, what it holds, its
/// values, and whether training changes them.
struct DecayTensor {
    name: String,
    what: String,
    values: Vec<f32>,
    learned: bool,
}

/// The decay tensors of `network` in checkpoint order ([`Network::state`]): a
/// HetSyn layer's input and recurrent synapses apart; one tensor per
/// neuron-level layer (its neurons' single decay serves input and recurrent
/// synapses alike, so its saved copy is left out).
fn decay_tensors(network: &Network<f32>) -> Vec<DecayTensor> {
    let stored = network.state().into_iter();
    let decays = stored.filter(|s| s.info.kind == ParamKind::Decay && !matches!(s.storage, Storage::Copy(_)));
    decays
        .map(|s| {
            let (layer, n) = (&network.layers()[s.layer], s.data.len());
            let (what, values) = match (s.storage, s.part, s.info.shape.len()) {
                (Storage::Fixed, ..) => {
                    (format!("{} neurons, one decay for all", layer.size()), vec![s.data[0]; layer.size()])
                }
                (_, _, 1) => (format!("{n} neurons, one decay each"), s.data.to_vec()),
                (_, Part::RecurrentDecay, _) => (format!("{n} recurrent synapses"), s.data.to_vec()),
                _ if layer.is_recurrent() => (format!("{n} input synapses"), s.data.to_vec()),
                _ => (format!("{n} synapses"), s.data.to_vec()),
            };
            DecayTensor { learned: s.learnable(), name: s.info.name, what, values }
        })
        .collect()
}

/// A bar beside the log axis, of time constants the axis does not show.
#[derive(Debug, Clone, PartialEq)]
struct Beyond {
    /// `> 10.5 s` or `∞`.
    label: String,
    learned: usize,
    /// `None` for a tensor training does not change.
    initial: Option<usize>,
}

/// The histogram of one decay tensor's time constants.
struct DecayPanel {
    caption: String,
    /// Bin edges on the log axis, ms; they cover the finite time constants up to the long-τ cut.
    edges: Vec<f64>,
    /// Counts per bin of the trained values (of the fixed values, for a fixed tensor).
    learned: Vec<usize>,
    /// Counts per bin of the initial values; `None` for a tensor training does not change.
    initial: Option<Vec<usize>>,
    /// Bars beside the axis: finite time constants beyond the cut, then τ = ∞ (decay ≥ 1).
    beyond: Vec<Beyond>,
}

impl DecayPanel {
    /// `long_ms`: the long-τ cut, ms; `frozen`: `model.frozen_decay_fraction`.
    fn new(tensor: &DecayTensor, now: &Taus, start: Option<&Taus>, long_ms: f64, frozen: f64) -> DecayPanel {
        let on_axis = |t: &Taus| t.finite_ms.iter().copied().filter(|v| *v <= long_ms).collect::<Vec<f64>>();
        let (now_axis, start_axis) = (on_axis(now), start.map(on_axis));
        let (lo, hi) = finite_range(now_axis.iter().chain(start_axis.iter().flatten()).copied()).unwrap_or((1.0, 1.0));
        let n = now_axis.len().max(start_axis.as_ref().map_or(0, Vec::len));
        // odd, so that a single value sits in the middle of a bin
        let bins = ((2.0 * (n as f64).sqrt()).round() as usize).clamp(8, 50) | 1;
        let edges = log_bins(lo, hi, bins);

        let long = |t: &Taus| t.finite_ms.len() - on_axis(t).len();
        let beyond = vec![
            Beyond { label: format!("> {}", duration(long_ms)), learned: long(now), initial: start.map(long) },
            Beyond { label: "τ = ∞".into(), learned: now.infinite, initial: start.map(|t| t.infinite) },
        ];

        let mut caption = format!("{}: {}", tensor.name, tensor.what);
        if let [first, rest @ ..] = &now.finite_ms[..] {
            if now.infinite + now.zero == 0 && !rest.is_empty() && rest.iter().all(|v| v == first) {
                caption.push_str(&format!(", all τ = {}", duration(*first)));
            }
        }
        if !tensor.learned {
            caption.push_str(", fixed (not learned)");
        } else if frozen > 0.0 {
            caption.push_str(&format!(", {} % frozen at their initial value", tick(100.0 * frozen)));
        }
        let zeros: Vec<String> = [("learned", Some(now)), ("initial", start)]
            .into_iter()
            .filter_map(|(label, t)| t.filter(|t| t.zero > 0).map(|t| format!("{label} {}", t.zero)))
            .collect();
        if !zeros.is_empty() {
            caption.push_str(&format!("; at τ = 0 (off the axis): {}", zeros.join(", ")));
        }
        DecayPanel {
            caption,
            learned: bin_counts(&now_axis, &edges),
            initial: start_axis.map(|v| bin_counts(&v, &edges)),
            edges,
            beyond,
        }
    }

    /// `(label, colour)` of the filled bars: learned, or fixed.
    fn filled(&self) -> (&'static str, RGBAColor) {
        if self.initial.is_some() {
            ("learned", LEARNED_COLOR.mix(0.55))
        } else {
            ("fixed (not learned)", FIXED_COLOR.mix(0.8))
        }
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = area.titled(&self.caption, (FAMILY, CAPTION_SIZE)).map_err(drawing)?;
        let counts = self.learned.iter().chain(self.initial.iter().flatten()).copied();
        let beyond = self.beyond.iter().flat_map(|b| [b.learned, b.initial.unwrap_or(0)]);
        // at least 0..5, so that whole-number ticks are there to label
        let top = (counts.chain(beyond).max().unwrap_or(0) as f64 * 1.15).max(5.0);
        let (width, _) = area.dim_in_pixel();
        let side = 20 + 70 * self.beyond.len() as u32;
        let (main, side_area) = area.split_horizontally(width.saturating_sub(side));
        let (fill_label, fill) = self.filled();
        let (lo, hi) = (self.edges[0], self.edges[self.edges.len() - 1]);

        let mut chart = ChartBuilder::on(&main)
            .margin(8)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(LogAxis::new(lo, hi), 0.0..top)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc("time constant τ (ms), log scale")
            .x_labels((width.saturating_sub(side) / 80).max(3) as usize)
            .y_desc("count")
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| if v.fract() == 0.0 { tick(*v) } else { String::new() })
            .y_labels(5)
            .label_style((FAMILY, LABEL_SIZE))
            .axis_desc_style((FAMILY, LABEL_SIZE))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(drawing)?;
        let bars = self
            .learned
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(k, c)| Rectangle::new([(self.edges[k], 0.0), (self.edges[k + 1], *c as f64)], fill.filled()));
        chart
            .draw_series(bars)
            .map_err(drawing)?
            .label(fill_label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], fill.filled()));
        if let Some(initial) = &self.initial {
            // the initial histogram as an outline: a step path over the bins
            let mut outline = vec![(lo, 0.0)];
            for (k, c) in initial.iter().enumerate() {
                outline.push((self.edges[k], *c as f64));
                outline.push((self.edges[k + 1], *c as f64));
            }
            outline.push((hi, 0.0));
            chart
                .draw_series(std::iter::once(PathElement::new(outline, INITIAL_COLOR.stroke_width(2))))
                .map_err(drawing)?
                .label("initial")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], INITIAL_COLOR.stroke_width(2)));
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;

        // the bars beside the axis, on the same count scale, each with its count above
        let labels: Vec<String> = self.beyond.iter().map(|b| b.label.clone()).collect();
        let slots = self.beyond.len();
        let mut side = ChartBuilder::on(&side_area)
            .margin(8)
            .margin_left(24)
            .x_label_area_size(45)
            .build_cartesian_2d(-0.5..(slots as f64 - 0.5), 0.0..top)
            .map_err(drawing)?;
        side.configure_mesh()
            .disable_mesh()
            .x_labels(slots)
            .x_label_formatter(&|x| category_label(*x, &labels))
            .y_labels(0)
            .label_style((FAMILY, LABEL_SIZE))
            .axis_desc_style((FAMILY, LABEL_SIZE))
            .draw()
            .map_err(drawing)?;
        for (k, b) in self.beyond.iter().enumerate() {
            let x = k as f64;
            let learned = b.learned as f64;
            side.draw_series([Rectangle::new([(x - 0.3, 0.0), (x + 0.3, learned)], fill.filled())]).map_err(drawing)?;
            if let Some(initial) = b.initial.filter(|c| *c > 0) {
                side.draw_series([Rectangle::new(
                    [(x - 0.3, 0.0), (x + 0.3, initial as f64)],
                    INITIAL_COLOR.stroke_width(2),
                )])
                .map_err(drawing)?;
            }
            let style = TextStyle::from((FAMILY, LABEL_SIZE).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
            side.draw_series([Text::new(
                b.learned.to_string(),
                (x, learned.max(b.initial.unwrap_or(0) as f64)),
                style,
            )])
            .map_err(drawing)?;
        }
        Ok(())
    }
}

struct DecayHistograms {
    title: String,
    panels: Vec<DecayPanel>,
}

impl DecayHistograms {
    /// One panel per decay tensor of `learned`, against the same tensor of
    /// `initial` where training changes it; `trial_ms`: the length of a trial in
    /// model time (sets the long-τ cut, [`LONG_TRIALS`]); `frozen`: `model.frozen_decay_fraction`.
    fn new(
        learned: &Network<f32>,
        initial: &Network<f32>,
        dt: f64,
        trial_ms: f64,
        frozen: f64,
        title: String,
    ) -> DecayHistograms {
        let long_ms = if trial_ms > 0.0 { LONG_TRIALS * trial_ms } else { f64::INFINITY };
        let panels = decay_tensors(learned)
            .iter()
            .zip(decay_tensors(initial))
            .map(|(now, start)| {
                let start = now.learned.then(|| Taus::of(&start.values, dt));
                DecayPanel::new(now, &Taus::of(&now.values, dt), start.as_ref(), long_ms, frozen)
            })
            .collect();
        DecayHistograms { title, panels }
    }
}

impl Figure for DecayHistograms {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, &self.title)?;
        // one column of up to three panels, else two columns
        let columns = if self.panels.len() > 3 { 2 } else { 1 };
        let areas = area.split_evenly((self.panels.len().div_ceil(columns), columns));
        for (panel, area) in self.panels.iter().zip(&areas) {
            panel.draw(area)?;
        }
        Ok(())
    }
}

/// A duration given in ms, in ms below a second and in s from there: `40 ms`, `10.5 s`.
fn duration(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{} ms", tick(ms))
    } else {
        format!("{} s", tick(ms / 1000.0))
    }
}

struct RasterPanel {
    caption: String,
    axis: &'static str,
    size: usize,
    /// `(step, neuron, shade in 0..=1)` of each spike (or non-zero input).
    events: Vec<(usize, usize, f64)>,
    /// Named channel groups, labelled beside the panel (input panel only).
    groups: Vec<(String, Range<usize>)>,
}

struct Raster {
    title: String,
    subtitle: String,
    steps: usize,
    dt_ms: f64,
    panels: Vec<RasterPanel>,
    /// The task's marked windows, ms: shaded in every panel, labelled in the first.
    windows: Vec<(String, Range<f64>)>,
}

/// Right margin of a panel whose channel groups are labelled beside it, pixels.
const GROUP_MARGIN: u32 = 120;

impl Figure for Raster {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, &self.title)?;
        let area = area.titled(&self.subtitle, (FAMILY, CAPTION_SIZE)).map_err(drawing)?;
        let areas = area.split_evenly((self.panels.len(), 1));
        let last = self.panels.len() - 1;
        let end = self.steps as f64 * self.dt_ms;
        // the same right margin everywhere, so that the time axes line up
        let right = if self.panels.iter().any(|p| !p.groups.is_empty()) { GROUP_MARGIN } else { 24 };
        for (p, (panel, area)) in self.panels.iter().zip(&areas).enumerate() {
            let labelled = p == 0 && !self.windows.is_empty();
            let top = panel.size as f64 + if labelled { headroom(area, panel.size as f64) } else { 0.0 };
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.caption, (FAMILY, CAPTION_SIZE))
                .margin(8)
                .margin_right(right)
                .x_label_area_size(if p == last { 40 } else { 25 })
                .y_label_area_size(70)
                .build_cartesian_2d(0.0..end, 0.0..top)
                .map_err(drawing)?;
            let size = panel.size as f64;
            let y_tick = |v: &f64| if *v <= size { tick(*v) } else { String::new() };
            let mut mesh = chart.configure_mesh();
            mesh.y_desc(panel.axis)
                .x_label_formatter(&|v| tick(*v))
                .y_label_formatter(&y_tick)
                .y_labels(5)
                .disable_mesh()
                .label_style((FAMILY, LABEL_SIZE))
                .axis_desc_style((FAMILY, LABEL_SIZE));
            if p == last {
                mesh.x_desc("time (ms)");
            }
            mesh.draw().map_err(drawing)?;
            draw_windows(&mut chart, &self.windows, 0.0..top, labelled)?;
            let dt = self.dt_ms;
            chart
                .draw_series(panel.events.iter().map(|&(t, j, shade)| {
                    Rectangle::new(
                        [(t as f64 * dt, j as f64), ((t + 1) as f64 * dt, (j + 1) as f64)],
                        SPIKE_COLOR.mix(0.15 + 0.85 * shade).filled(),
                    )
                }))
                .map_err(drawing)?;
            draw_groups(area, &chart, &panel.groups, end)?;
        }
        Ok(())
    }
}

/// Extra y range above `span` that leaves about 24 pixels for window labels
/// at the top of a panel drawn in `area`.
fn headroom<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, span: f64) -> f64 {
    let (_, height) = area.dim_in_pixel();
    // the plot is the panel less its caption, axis labels and margins
    let plot = (f64::from(height) - 90.0).max(60.0);
    span * 24.0 / (plot - 24.0)
}

/// Shades each window `(label, start..end ms)` of a time axis over `y`, and
/// writes its label at the top when `labelled`.
fn draw_windows<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    windows: &[(String, Range<f64>)],
    y: Range<f64>,
    labelled: bool,
) -> Result<()> {
    let shade = windows
        .iter()
        .map(|(_, w)| Rectangle::new([(w.start, y.start), (w.end, y.end)], WINDOW_COLOR.mix(0.22).filled()));
    chart.draw_series(shade).map_err(drawing)?;
    if labelled {
        let style = TextStyle::from((FAMILY, LABEL_SIZE).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        let labels =
            windows.iter().map(|(label, w)| Text::new(label.clone(), (0.5 * (w.start + w.end), y.end), style.clone()));
        chart.draw_series(labels).map_err(drawing)?;
    }
    Ok(())
}

/// Labels each channel group `(name, channels)` of a raster panel in `area`
/// with a coloured bracket and its name right of the plot (which ends at time
/// `end`), and draws a line between neighbouring groups.
fn draw_groups<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    groups: &[(String, Range<usize>)],
    end: f64,
) -> Result<()> {
    let (bx, by) = area.get_base_pixel();
    for (g, (name, channels)) in groups.iter().enumerate() {
        let color = SERIES_COLORS[g % SERIES_COLORS.len()];
        let (x, y0) = chart.backend_coord(&(end, channels.start as f64));
        let (_, y1) = chart.backend_coord(&(end, channels.end as f64));
        let (x, y0, y1) = (x - bx, y0 - by, y1 - by);
        if channels.start > 0 {
            let (x0, _) = chart.backend_coord(&(0.0, 0.0));
            area.draw(&PathElement::new([(x0 - bx, y0), (x, y0)], BLACK.mix(0.4).stroke_width(1))).map_err(drawing)?;
        }
        let style =
            TextStyle::from((FAMILY, LABEL_SIZE).into_font()).color(&color).pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&PathElement::new([(x + 8, y0 - 1), (x + 8, y1 + 1)], color.stroke_width(4)))
            .and_then(|()| area.draw(&Text::new(name.clone(), (x + 16, (y0 + y1) / 2), style)))
            .map_err(drawing)?;
    }
    Ok(())
}

/// One panel of an output figure: its caption, and the target and the readout
/// as `(time ms, value)`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputPanel {
    pub caption: String,
    pub target: Vec<(f64, f64)>,
    pub output: Vec<(f64, f64)>,
}

pub(super) struct OutputPlot {
    pub(super) title: String,
    pub(super) steps: usize,
    pub(super) dt_ms: f64,
    pub(super) panels: Vec<OutputPanel>,
    /// The task's marked windows, ms: shaded in every panel, labelled in the first.
    pub(super) windows: Vec<(String, Range<f64>)>,
}

impl Figure for OutputPlot {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, &self.title)?;
        let areas = area.split_evenly((self.panels.len().max(1), 1));
        let last = self.panels.len().saturating_sub(1);
        let end = self.steps as f64 * self.dt_ms;
        for (p, (panel, area)) in self.panels.iter().zip(&areas).enumerate() {
            let (lo, hi) =
                finite_range(panel.target.iter().chain(&panel.output).map(|(_, v)| *v)).unwrap_or((-1.0, 1.0));
            let mut y = padded(lo, hi);
            let labelled = p == 0 && !self.windows.is_empty();
            if labelled {
                y.end += headroom(area, y.end - y.start);
            }
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.caption, (FAMILY, CAPTION_SIZE))
                .margin(8)
                .margin_right(24)
                .x_label_area_size(if p == last { 40 } else { 25 })
                .y_label_area_size(70)
                .build_cartesian_2d(0.0..end, y.clone())
                .map_err(drawing)?;
            let mut mesh = chart.configure_mesh();
            mesh.x_label_formatter(&|v| tick(*v))
                .y_label_formatter(&|v| tick(*v))
                .y_labels(5)
                .y_desc("readout y, target (a.u.)")
                .label_style((FAMILY, LABEL_SIZE))
                .axis_desc_style((FAMILY, LABEL_SIZE))
                .light_line_style(TRANSPARENT);
            if p == last {
                mesh.x_desc("time (ms)");
            }
            mesh.draw().map_err(drawing)?;
            draw_windows(&mut chart, &self.windows, y, labelled)?;
            let finite =
                |points: &[(f64, f64)]| points.iter().copied().filter(|(_, v)| v.is_finite()).collect::<Vec<_>>();
            chart
                .draw_series(LineSeries::new(finite(&panel.target), BLACK.stroke_width(2)))
                .map_err(drawing)?
                .label("target")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.stroke_width(2)));
            chart
                .draw_series(LineSeries::new(finite(&panel.output), LEARNED_COLOR.stroke_width(2)))
                .map_err(drawing)?
                .label("output y")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], LEARNED_COLOR.stroke_width(2)));
            draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::draw::tests::count_text;
    use super::super::draw::HEIGHT;
    use super::*;

    #[test]
    fn tau_of_decay() {
        let dt = 0.001;
        // exp(-dt/tau) with tau = 20 ms
        let decay = (-0.001f64 / 0.020).exp();
        assert!((tau_ms(decay, dt) - 20.0).abs() < 1e-9, "{}", tau_ms(decay, dt));
        assert!((tau_ms((-1.0f64).exp(), 0.005) - 5.0).abs() < 1e-9);
        assert_eq!(tau_ms(1.0, dt), f64::INFINITY);
        assert_eq!(tau_ms(1.5, dt), f64::INFINITY);
        assert_eq!(tau_ms(0.0, dt), 0.0);
        assert_eq!(tau_ms(-0.1, dt), 0.0);
        // f32 decays, as stored
        let taus = Taus::of(&[1.0f32, 0.0, (-0.05f32).exp(), 1.0, 0.5], dt);
        assert_eq!(taus.infinite, 2);
        assert_eq!(taus.zero, 1);
        assert_eq!(taus.finite_ms.len(), 2);
        assert!((taus.finite_ms[0] - 20.0).abs() < 1e-3, "{:?}", taus.finite_ms);
        assert!((taus.finite_ms[1] - 1000.0 * 0.001 / 2f64.ln()).abs() < 1e-9);
    }

    #[test]
    fn log_bins_and_counts() {
        let edges = log_bins(1.0, 1000.0, 3);
        assert_eq!(edges.len(), 4);
        for (e, want) in edges.iter().zip([1.0, 10.0, 100.0, 1000.0]) {
            assert!((e / want - 1.0).abs() < 1e-12, "{edges:?}");
        }
        // ratios are constant
        let edges = log_bins(2.0, 50.0, 7);
        let r = edges[1] / edges[0];
        assert!(edges.windows(2).all(|w| (w[1] / w[0] / r - 1.0).abs() < 1e-12));
        assert_eq!((edges[0], edges[7]), (2.0, 50.0));
        // one value: a range around it
        let edges = log_bins(20.0, 20.0, 4);
        assert!(edges[0] < 20.0 && edges[4] > 20.0, "{edges:?}");

        let edges = [1.0, 10.0, 100.0, 1000.0];
        let counts = bin_counts(&[1.0, 5.0, 9.999, 10.0, 99.0, 100.0, 999.0, 1000.0, 0.5, 1001.0, f64::NAN], &edges);
        assert_eq!(counts, vec![3, 2, 3]);
        // every value of a range falls in its bins
        let values: Vec<f64> = (1..=500).map(|k| 3.0 * 1.01f64.powi(k)).collect();
        let edges = log_bins(values[0], values[499], 25);
        assert_eq!(bin_counts(&values, &edges).iter().sum::<usize>(), 500);
    }

    /// The regression plot, which no task exercises end to end yet.
    #[test]
    fn output_plot_draws() {
        let dir = tempfile::tempdir().unwrap();
        let steps = 50;
        let series = |phase: f64| (0..steps).map(|t| (t as f64 * 2.0, (t as f64 / 8.0 + phase).sin())).collect();
        let plot = OutputPlot {
            title: "output".into(),
            steps,
            dt_ms: 2.0,
            panels: (0..2)
                .map(|o| OutputPanel { caption: format!("output {o}"), target: series(0.0), output: series(0.3) })
                .collect(),
            windows: vec![("repeat 1".into(), 0.0..20.0), ("repeat 2".into(), 40.0..60.0)],
        };
        let [png, svg] = write_figure(dir.path(), "output", &plot).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(std::fs::read(&png).unwrap()));
        let info = decoder.read_info().unwrap();
        assert_eq!((info.info().width, info.info().height), (WIDTH, HEIGHT));
        let svg = std::fs::read_to_string(&svg).unwrap();
        assert!(svg.contains("<svg"));
        // a y label on each panel; the windows labelled once, in the first panel
        assert_eq!(count_text(&svg, "readout y, target (a.u.)"), 2, "{svg}");
        assert_eq!((count_text(&svg, "repeat 1"), count_text(&svg, "repeat 2")), (1, 1));
    }

    #[test]
    fn run_output_only_for_series() {
        let run = |target| SampleRun {
            steps: 4,
            dt_ms: 1.0,
            channels: 1,
            input: vec![1.0, 0.0, 0.0, 1.0],
            hidden: Vec::new(),
            outputs: 2,
            y: vec![0.0; 8],
            target,
        };
        let marks = TrialMarks { groups: Vec::new(), windows: vec![("w".into(), 1..3), ("past the end".into(), 3..9)] };
        assert!(run(Target::Class(1)).output("x".into(), &marks).is_none());
        let plot = run(Target::Series((0..8).map(|k| k as f32).collect())).output("x".into(), &marks).unwrap();
        assert_eq!(plot.panels.len(), 2);
        assert_eq!(plot.panels[1].target, vec![(1.0, 1.0), (2.0, 3.0), (3.0, 5.0), (4.0, 7.0)]);
        // windows in ms; one that does not fit the trial is left out
        assert_eq!(plot.windows, vec![("w".to_string(), 1.0..3.0)]);
    }

    /// A network of model `kind` with 6 inputs, one hidden layer of 5 and 2
    /// outputs, time constants about 40 ms at dt = 5 ms.
    fn network(kind: crate::model::init::ModelKind, recurrent: bool) -> Network<f32> {
        use crate::model::init::{LayerSpec, NetworkSpec, TauInit};
        use rand::SeedableRng;
        let tau_init = TauInit::Normal { mean: 0.04, std: 0.004 };
        let spec = NetworkSpec {
            kind,
            dt: DT,
            threshold: 1.0,
            surrogate: crate::model::Surrogate::Triangle,
            tau_reset: 0.04,
            adaptation_tau: 0.8,
            adaptation_strength: 0.15,
            weight_scale: 1.0,
            decay_min: 0.0,
            decay_max: 1.0,
            layers: vec![LayerSpec { size: 5, recurrent, tau_init }],
            readout_tau_init: tau_init,
            spiking_readout: false,
        };
        crate::model::init::build(&spec, 6, 2, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1))
    }

    /// The step of [`network`], seconds.
    const DT: f64 = 0.005;

    fn histograms(kind: &str, recurrent: bool, edit: impl Fn(&mut Network<f32>)) -> DecayHistograms {
        use crate::model::init::ModelKind;
        let kind = match kind {
            "hetsynlif" => ModelKind::Hetsynlif,
            "hetneulif" => ModelKind::Hetneulif,
            "homneulif" => ModelKind::Homneulif,
            "homneualif" => ModelKind::Homneualif,
            other => panic!("{other}"),
        };
        let initial = network(kind, recurrent);
        let mut learned = initial.clone();
        edit(&mut learned);
        DecayHistograms::new(&learned, &initial, DT, 350.0, 0.0, "t".into())
    }

    /// One panel per decay tensor, named as in the checkpoint; learned ones
    /// against their initial values, fixed ones (HomNeu) alone.
    #[test]
    fn one_panel_per_decay_tensor() {
        let names = |h: &DecayHistograms| -> Vec<String> {
            h.panels.iter().map(|p| p.caption.split(':').next().unwrap().to_string()).collect()
        };
        let het = histograms("hetsynlif", true, |_| {});
        assert_eq!(names(&het), ["hidden.0.input.decay", "hidden.0.recurrent.decay", "readout.decay"]);
        assert!(het.panels.iter().all(|p| p.initial.is_some() && !p.caption.contains("fixed")));
        assert_eq!(het.panels[1].learned.iter().sum::<usize>(), 25, "5 × 5 recurrent synapses");
        assert_eq!(names(&histograms("hetsynlif", false, |_| {})), ["hidden.0.input.decay", "readout.decay"]);

        let neu = histograms("hetneulif", true, |_| {});
        assert_eq!(names(&neu), ["hidden.0.input.decay", "readout.decay"]);
        assert!(neu.panels.iter().all(|p| p.initial.is_some()));

        for kind in ["homneulif", "homneualif"] {
            let hom = histograms(kind, true, |_| {});
            assert_eq!(hom.panels.len(), 2, "{kind}");
            for p in &hom.panels {
                assert!(p.initial.is_none(), "{kind}: {}: no initial histogram for fixed decays", p.caption);
                assert!(p.beyond.iter().all(|b| b.initial.is_none()));
                assert!(
                    p.caption.contains("fixed (not learned)") && p.caption.contains("all τ = 40 ms"),
                    "{}",
                    p.caption
                );
                assert_eq!(p.filled().0, "fixed (not learned)");
            }
        }
    }

    /// τ = ∞ (decay 1) and time constants beyond ten trials get bars of their
    /// own; the log axis spans the finite rest.
    #[test]
    fn infinite_and_very_long_taus_are_off_the_axis() {
        let h = histograms("hetsynlif", true, |net| {
            let (name, input) = &mut net.decays_mut()[0];
            assert_eq!(name, "hidden.0.input.decay");
            input[0] = 1.0;
            input[1] = 1.0;
            input[2] = 0.999_999_9; // τ ≈ 4e4 s at dt = 5 ms: finite, beyond 10 × 350 ms
            input[3] = 0.0; // τ = 0
        });
        let p = &h.panels[0];
        let (lo, hi) = (p.edges[0], p.edges[p.edges.len() - 1]);
        assert!(lo > 20.0 && hi < 100.0, "the axis covers the bulk, 40 ± 4 ms: {lo}..{hi}");
        assert_eq!(p.learned.iter().sum::<usize>(), 30 - 4);
        assert_eq!(p.initial.as_ref().unwrap().iter().sum::<usize>(), 30);
        assert_eq!(
            p.beyond,
            vec![
                Beyond { label: "> 3.5 s".into(), learned: 1, initial: Some(0) },
                Beyond { label: "τ = ∞".into(), learned: 2, initial: Some(0) },
            ]
        );
        assert!(p.caption.contains("at τ = 0 (off the axis): learned 1"), "{}", p.caption);
        // the other tensors are untouched: nothing beyond their axes
        assert!(h.panels[1].beyond.iter().all(|b| b.learned == 0), "{:?}", h.panels[1].beyond);

        // drawn: every panel has its x label, and the ∞ bar is labelled with its count
        let dir = tempfile::tempdir().unwrap();
        let [_, svg] = write_figure(dir.path(), "decay_hist", &h).unwrap();
        let svg = std::fs::read_to_string(svg).unwrap();
        assert_eq!(count_text(&svg, "time constant τ (ms), log scale"), 3);
        assert_eq!(count_text(&svg, "τ = ∞"), 3);
        assert_eq!(count_text(&svg, "> 3.5 s"), 3);
    }

    /// The raster's channel groups and windows are the task's.
    #[test]
    fn raster_marks_come_from_the_task() {
        use crate::tasks::dms::{Dms, DmsConfig};
        use crate::tasks::Task;
        let config =
            DmsConfig { channels_per_group: 2, delay: 0.1, validation_trials: 2, test_trials: 2, ..Default::default() };
        let task = Dms::new(config, DT, 0).unwrap();
        let marks = TrialMarks::of(&task);
        let network = network(crate::model::init::ModelKind::Hetsynlif, true);
        let run = SampleRun::new(&network, DT, &task.test()[0]).unwrap();
        let raster = run.raster("t".into(), "s".into(), &marks);
        let groups: Vec<(&str, Range<usize>)> =
            raster.panels[0].groups.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
        assert_eq!(groups, [("left cue", 0..2), ("right cue", 2..4), ("noise", 4..6)]);
        assert!(raster.panels[1].groups.is_empty(), "hidden neurons have no groups");
        // cue 1 at 50..150 ms, cue 2 after the 100 ms delay
        assert_eq!(raster.windows, vec![("cue 1".to_string(), 50.0..150.0), ("cue 2".to_string(), 250.0..350.0)]);

        let dir = tempfile::tempdir().unwrap();
        let [_, svg] = write_figure(dir.path(), "raster", &raster).unwrap();
        let svg = std::fs::read_to_string(svg).unwrap();
        for label in ["left cue", "right cue", "noise", "cue 1", "cue 2"] {
            assert_eq!(count_text(&svg, label), 1, "{label}");
        }

        // a task without groups (pattern generation): none, but its repeats
        let pattern = crate::tasks::pattern::Pattern::new(
            crate::tasks::pattern::PatternConfig {
                channels: 4,
                validation_trials: 1,
                test_trials: 1,
                ..Default::default()
            },
            0.001,
            0,
        )
        .unwrap();
        let marks = TrialMarks::of(&pattern);
        assert!(marks.groups.is_empty());
        assert_eq!(
            marks.windows,
            vec![("repeat 1".to_string(), 0..500), ("repeat 2".into(), 750..1250), ("repeat 3".into(), 1500..2000)]
        );
    }

    #[test]
    fn raster_title_gives_class_and_prediction() {
        let names = ["match".to_string(), "mismatch".to_string()];
        assert_eq!(
            trial_title(&Target::Class(1), Some(1), &names),
            "spikes of test sample 0: class mismatch (1), network predicts mismatch (1): correct"
        );
        assert_eq!(
            trial_title(&Target::Class(0), Some(1), &names),
            "spikes of test sample 0: class match (0), network predicts mismatch (1): wrong"
        );
        assert_eq!(
            trial_title(&Target::Class(7), Some(3), &[]),
            "spikes of test sample 0: class 7, network predicts 3: wrong"
        );
        assert_eq!(trial_title(&Target::Series(vec![0.0]), None, &names), "spikes of test sample 0");
    }
}
