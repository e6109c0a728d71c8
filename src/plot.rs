//! Plots of a run directory (`hetsyn plot`, and after `hetsyn train` unless
//! `--no-plots`): learning curves, learned versus initial time constants, a spike
//! raster of one test sample and, for regression tasks, its target and output.
//!
//! Every figure is written to `<run>/plots/<name>.png` and `<name>.svg`, both
//! [`WIDTH`] × [`HEIGHT`] pixels, each atomically. Text is drawn with DejaVu Sans,
//! compiled into the binary (`assets/`), so no system font is needed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::io::atomic::write_atomic;
use crate::train::evaluate::Trained;
use crate::train::metrics::read_metrics;
use crate::train::run::RunDir;
use crate::model::{Decays, Layer, Network};
use crate::tasks::{Sample, Target};

/// Width of every figure, pixels (PNG) or SVG user units.
pub const WIDTH: u32 = 1200;
/// Height of every figure, pixels (PNG) or SVG user units.
pub const HEIGHT: u32 = 800;

/// DejaVu Sans (licence: `assets/DejaVuSans-LICENSE.txt`).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// The family plotters uses when none is named; the embedded font is registered under it.
const FAMILY: &str = "sans-serif";

const TITLE_SIZE: u32 = 24;
const CAPTION_SIZE: u32 = 18;
const LABEL_SIZE: u32 = 15;

const TRAIN_COLOR: RGBColor = RGBColor(31, 119, 180);
const VALIDATION_COLOR: RGBColor = RGBColor(255, 127, 14);
const TEST_COLOR: RGBColor = RGBColor(44, 160, 44);
const LEARNED_COLOR: RGBColor = RGBColor(31, 119, 180);
const INITIAL_COLOR: RGBColor = RGBColor(214, 39, 40);
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
    let decays = DecayHistograms::new(network, &initial, config.model.dt, format!("time constants: {title}, {which}"));
    let step_s = task.step_seconds().unwrap_or(config.model.dt);
    let run = SampleRun::new(network, step_s, sample)?;
    let raster = run.raster(format!("spikes of test sample 0: {title}, {which}"));
    let output = run.output(format!("output of test sample 0: {title}, {which}"));

    let dir = run_dir.plots();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    written.extend(write_figure(&dir, "learning_curves", &learning)?);
    written.extend(write_figure(&dir, "decay_hist", &decays)?);
    written.extend(write_figure(&dir, "raster", &raster)?);
    if let Some(output) = output {
        written.extend(write_figure(&dir, "output", &output)?);
    }
    Ok(Plotted { checkpoint: checkpoint_path, files: written })
}

pub use crate::train::tau_stats::tau_ms;

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

    /// "12 at ∞, 3 at 0", or "" when every time constant is finite and positive.
    fn off_axis(&self) -> String {
        let mut parts = Vec::new();
        if self.infinite > 0 {
            parts.push(format!("{} at ∞", self.infinite));
        }
        if self.zero > 0 {
            parts.push(format!("{} at 0", self.zero));
        }
        parts.join(", ")
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
        let metrics = Metrics { step: rows.iter().map(|r| r.step as f64).collect(), loss, accuracy: columns("accuracy") };
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
            .map(|(l, (layer, lt))| (format!("hidden.{l}"), layer.size, layer.is_recurrent(), lt.spikes.clone()))
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

    fn raster(&self, title: String) -> Raster {
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
            });
        }
        Raster { title, steps: self.steps, dt_ms: self.dt_ms, panels }
    }

    /// Target and output of each readout, for regression samples only.
    fn output(&self, title: String) -> Option<OutputPlot> {
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
        Some(OutputPlot { title, steps: self.steps, dt_ms: self.dt_ms, panels })
    }
}

// ---------------------------------------------------------------------------
// figures

/// Something drawn onto any plotters backend (PNG buffer and SVG string alike).
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// A drawing error as an `anyhow::Error` (its message).
fn drawing<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow!("drawing failed: {e}")
}

/// The legend of a panel's labelled series, in the house style.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FAMILY, LABEL_SIZE))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(drawing)
}

/// Registers the embedded font with plotters (once per process).
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        bail!("the embedded font (assets/DejaVuSans.ttf) cannot be read")
    }
}

/// Draws `figure` as `<dir>/<stem>.png` and `<dir>/<stem>.svg`, each written atomically.
fn write_figure(dir: &Path, stem: &str, figure: &impl Figure) -> Result<[PathBuf; 2]> {
    register_font()?;
    let png_path = dir.join(format!("{stem}.png"));
    let svg_path = dir.join(format!("{stem}.svg"));

    let mut rgb = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        figure
            .draw(&root)
            .and_then(|()| root.present().map_err(drawing))
            .with_context(|| format!("cannot draw {}", png_path.display()))?;
    }
    let png = encode_png(&rgb, WIDTH, HEIGHT).with_context(|| format!("cannot encode {}", png_path.display()))?;
    write_atomic(&png_path, &png)?;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        figure
            .draw(&root)
            .and_then(|()| root.present().map_err(drawing))
            .with_context(|| format!("cannot draw {}", svg_path.display()))?;
    }
    write_atomic(&svg_path, svg.as_bytes())?;
    Ok([png_path, svg_path])
}

/// An 8-bit RGB image as PNG bytes.
fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

/// White background and a title line; returns the area below the title.
fn titled<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str) -> Result<DrawingArea<DB, Shift>> {
    root.fill(&WHITE).map_err(drawing)?;
    root.titled(title, (FAMILY, TITLE_SIZE)).map_err(drawing)
}

/// `(lo, hi)` of the finite values, or `None`.
fn finite_range(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A linear axis range around `(lo, hi)` with 5 % margins (never empty).
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let span = hi - lo;
    let pad = if span > 0.0 { 0.05 * span } else { 0.5 * lo.abs().max(1.0) };
    (lo - pad)..(hi + pad)
}

/// Tick labels without trailing noise: 0.001, 0.5, 20, 1.5e4.
fn tick(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.0e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A log-scaled axis from `lo` to `hi` (both > 0) whose ticks stay readable
/// over any span: powers of ten, then 1-2-5, 1-2-3-5 or 1..9 per decade, and plain
/// linear ticks when the span is narrower than a decade has to offer
/// (plotters' own log axis puts ticks at powers of ten only).
#[derive(Debug, Clone)]
struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    fn new(lo: f64, hi: f64) -> LogAxis {
        assert!(lo > 0.0 && hi > lo, "LogAxis({lo}, {hi})");
        LogAxis { lo, hi }
    }
}

impl Ranged for LogAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let (a, b) = (self.lo.ln(), self.hi.ln());
        let f = (value.max(f64::MIN_POSITIVE).ln() - a) / (b - a);
        let pixel = f64::from(limit.0) + f * f64::from(limit.1 - limit.0);
        pixel.round().clamp(-1e6, 1e6) as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        log_ticks(self.lo, self.hi, hint.max_num_points())
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Tick values in `[lo, hi]` for a log axis, at most `max` of them (and at least
/// two whenever `max >= 2`).
fn log_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    if max == 0 || !(lo > 0.0 && hi >= lo) {
        return Vec::new();
    }
    let per_decade = |mantissas: &[f64]| -> Vec<f64> {
        let mut ticks = Vec::new();
        let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        for k in first..=last {
            for m in mantissas {
                // m * 10^k, rounded to the digits it has (no 3.0000000000000004)
                let v: f64 = format!("{m}e{k}").parse().unwrap_or(f64::NAN);
                if v >= lo * (1.0 - 1e-12) && v <= hi * (1.0 + 1e-12) {
                    ticks.push(v);
                }
            }
        }
        ticks
    };
    let mut best = Vec::new();
    for mantissas in
        [&[1.0][..], &[1.0, 2.0, 5.0], &[1.0, 2.0, 3.0, 5.0], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]]
    {
        let ticks = per_decade(mantissas);
        if ticks.len() > max {
            break;
        }
        best = ticks;
        if best.len() >= 4 {
            return best;
        }
    }
    if best.len() >= 3 || max < 3 {
        return best;
    }
    linear_ticks(lo, hi, max.min(6))
}

/// Round-number ticks (steps of 1, 2 or 5 × 10^k) in `[lo, hi]`, at most `max`.
fn linear_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let span = hi - lo;
    if max == 0 || span.is_nan() || span <= 0.0 {
        return vec![lo];
    }
    let raw = span / max as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| span / s <= max as f64)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).map(|v| format!("{v:.12e}").parse().unwrap_or(v)).collect()
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

    fn loss_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let values = || self.loss.iter().flat_map(|(_, _, p)| p.iter().map(|(_, v)| *v));
        let (lo, hi) = finite_range(values()).unwrap_or((0.0, 1.0));
        if lo > 0.0 {
            let (lo, hi) = if hi > lo * 1.01 { (lo / 1.15, hi * 1.15) } else { (lo / 2.0, hi * 2.0) };
            let mut chart = ChartBuilder::on(area)
                .caption("loss (log scale)", (FAMILY, CAPTION_SIZE))
                .margin(12)
                .margin_right(24)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(self.steps.clone(), LogAxis::new(lo, hi))
                .map_err(drawing)?;
            self.curves(&mut chart, &self.loss, "loss", SeriesLabelPosition::UpperRight)
        } else {
            let mut chart = ChartBuilder::on(area)
                .caption("loss", (FAMILY, CAPTION_SIZE))
                .margin(12)
                .margin_right(24)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(self.steps.clone(), padded(lo, hi))
                .map_err(drawing)?;
            self.curves(&mut chart, &self.loss, "loss", SeriesLabelPosition::UpperRight)
        }
    }

    fn accuracy_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let mut chart = ChartBuilder::on(area)
            .caption("accuracy", (FAMILY, CAPTION_SIZE))
            .margin(12)
            .margin_right(24)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(self.steps.clone(), -2.0..102.0)
            .map_err(drawing)?;
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

struct DecayPanel {
    caption: String,
    edges: Vec<f64>,
    initial: Vec<usize>,
    learned: Vec<usize>,
}

struct DecayHistograms {
    title: String,
    panels: Vec<DecayPanel>,
}

/// All decays of a layer (input and recurrent synapses, or one per neuron) and what they are.
fn layer_decays(layer: &Layer<f32>) -> (Vec<f32>, String) {
    match &layer.decays {
        Decays::Synapse { input, recurrent, .. } => {
            let mut all = input.clone();
            let what = match recurrent {
                Some(q) => {
                    all.extend_from_slice(q);
                    format!("{} input + {} recurrent synapses", input.len(), q.len())
                }
                None => format!("{} synapses", input.len()),
            };
            (all, what)
        }
        Decays::Neuron { rho, learnable } => {
            (rho.clone(), format!("{} neurons{}", rho.len(), if *learnable { "" } else { ", fixed" }))
        }
    }
}

impl DecayHistograms {
    fn new(learned: &Network<f32>, initial: &Network<f32>, dt: f64, title: String) -> DecayHistograms {
        let last = learned.layers.len() - 1;
        let panels = learned
            .layers
            .iter()
            .zip(&initial.layers)
            .enumerate()
            .map(|(l, (now, start))| {
                let name = if l == last { "readout".to_string() } else { format!("hidden.{l}") };
                let (now, what) = layer_decays(now);
                let (start, _) = layer_decays(start);
                let (now, start) = (Taus::of(&now, dt), Taus::of(&start, dt));
                let (lo, hi) =
                    finite_range(now.finite_ms.iter().chain(&start.finite_ms).copied()).unwrap_or((1.0, 1.0));
                let n = now.finite_ms.len().max(start.finite_ms.len());
                let bins = ((2.0 * (n as f64).sqrt()).round() as usize).clamp(8, 50);
                let edges = log_bins(lo, hi, bins);
                let mut caption = format!("{name}: {what}");
                for (label, taus) in [("learned", &now), ("initial", &start)] {
                    let off = taus.off_axis();
                    if !off.is_empty() {
                        caption.push_str(&format!("; {label}: {off}"));
                    }
                }
                DecayPanel {
                    caption,
                    initial: bin_counts(&start.finite_ms, &edges),
                    learned: bin_counts(&now.finite_ms, &edges),
                    edges,
                }
            })
            .collect();
        DecayHistograms { title, panels }
    }
}

impl Figure for DecayHistograms {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, &self.title)?;
        let areas = area.split_evenly((self.panels.len(), 1));
        let last = self.panels.len() - 1;
        for (p, (panel, area)) in self.panels.iter().zip(&areas).enumerate() {
            // at least 0..5, so that whole-number ticks are there to label
            let top = (panel.learned.iter().chain(&panel.initial).copied().max().unwrap_or(0) as f64 * 1.15).max(5.0);
            let (lo, hi) = (panel.edges[0], panel.edges[panel.edges.len() - 1]);
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.caption, (FAMILY, CAPTION_SIZE))
                .margin(8)
                .margin_right(24)
                .x_label_area_size(if p == last { 40 } else { 25 })
                .y_label_area_size(70)
                .build_cartesian_2d(LogAxis::new(lo, hi), 0.0..top)
                .map_err(drawing)?;
            let mut mesh = chart.configure_mesh();
            mesh.y_desc("count")
                .x_label_formatter(&|v| tick(*v))
                .y_label_formatter(&|v| if v.fract() == 0.0 { tick(*v) } else { String::new() })
                .y_labels(5)
                .label_style((FAMILY, LABEL_SIZE))
                .light_line_style(TRANSPARENT);
            if p == last {
                mesh.x_desc("time constant τ (ms), log scale");
            }
            mesh.draw().map_err(drawing)?;
            let bars = panel.learned.iter().enumerate().filter(|(_, c)| **c > 0).map(|(k, c)| {
                Rectangle::new(
                    [(panel.edges[k], 0.0), (panel.edges[k + 1], *c as f64)],
                    LEARNED_COLOR.mix(0.55).filled(),
                )
            });
            chart
                .draw_series(bars)
                .map_err(drawing)?
                .label("learned")
                .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], LEARNED_COLOR.mix(0.55).filled()));
            // the initial histogram as an outline: a step path over the bins
            let mut outline = vec![(lo, 0.0)];
            for (k, c) in panel.initial.iter().enumerate() {
                outline.push((panel.edges[k], *c as f64));
                outline.push((panel.edges[k + 1], *c as f64));
            }
            outline.push((hi, 0.0));
            chart
                .draw_series(std::iter::once(PathElement::new(outline, INITIAL_COLOR.stroke_width(2))))
                .map_err(drawing)?
                .label("initial")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], INITIAL_COLOR.stroke_width(2)));
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }
        Ok(())
    }
}

struct RasterPanel {
    caption: String,
    axis: &'static str,
    size: usize,
    /// `(step, neuron, shade in 0..=1)` of each spike (or non-zero input).
    events: Vec<(usize, usize, f64)>,
}

struct Raster {
    title: String,
    steps: usize,
    dt_ms: f64,
    panels: Vec<RasterPanel>,
}

impl Figure for Raster {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, &self.title)?;
        let areas = area.split_evenly((self.panels.len(), 1));
        let last = self.panels.len() - 1;
        let end = self.steps as f64 * self.dt_ms;
        for (p, (panel, area)) in self.panels.iter().zip(&areas).enumerate() {
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.caption, (FAMILY, CAPTION_SIZE))
                .margin(8)
                .margin_right(24)
                .x_label_area_size(if p == last { 40 } else { 25 })
                .y_label_area_size(70)
                .build_cartesian_2d(0.0..end, 0.0..panel.size as f64)
                .map_err(drawing)?;
            let mut mesh = chart.configure_mesh();
            mesh.y_desc(panel.axis)
                .x_label_formatter(&|v| tick(*v))
                .y_label_formatter(&|v| tick(*v))
                .y_labels(5)
                .disable_mesh()
                .label_style((FAMILY, LABEL_SIZE));
            if p == last {
                mesh.x_desc("time (ms)");
            }
            mesh.draw().map_err(drawing)?;
            let dt = self.dt_ms;
            chart
                .draw_series(panel.events.iter().map(|&(t, j, shade)| {
                    Rectangle::new(
                        [(t as f64 * dt, j as f64), ((t + 1) as f64 * dt, (j + 1) as f64)],
                        SPIKE_COLOR.mix(0.15 + 0.85 * shade).filled(),
                    )
                }))
                .map_err(drawing)?;
        }
        Ok(())
    }
}

struct OutputPanel {
    caption: String,
    target: Vec<(f64, f64)>,
    output: Vec<(f64, f64)>,
}

struct OutputPlot {
    title: String,
    steps: usize,
    dt_ms: f64,
    panels: Vec<OutputPanel>,
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
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.caption, (FAMILY, CAPTION_SIZE))
                .margin(8)
                .margin_right(24)
                .x_label_area_size(if p == last { 40 } else { 25 })
                .y_label_area_size(70)
                .build_cartesian_2d(0.0..end, padded(lo, hi))
                .map_err(drawing)?;
            let mut mesh = chart.configure_mesh();
            mesh.x_label_formatter(&|v| tick(*v))
                .y_label_formatter(&|v| tick(*v))
                .y_labels(5)
                .label_style((FAMILY, LABEL_SIZE))
                .light_line_style(TRANSPARENT);
            if p == last {
                mesh.x_desc("time (ms)");
            }
            mesh.draw().map_err(drawing)?;
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
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(taus.off_axis(), "2 at ∞, 1 at 0");
        assert_eq!(Taus::of(&[0.5f32], dt).off_axis(), "");
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

    #[test]
    fn log_axis_ticks() {
        // wide: powers of ten
        assert_eq!(log_ticks(0.5, 20000.0, 10), vec![1.0, 10.0, 100.0, 1000.0, 10000.0]);
        // a decade or two: 1-2-5, 1-2-3-5
        assert_eq!(log_ticks(3.0, 60.0, 10), vec![5.0, 10.0, 20.0, 50.0]);
        assert_eq!(log_ticks(18.0, 150.0, 10), vec![20.0, 30.0, 50.0, 100.0]);
        // within a decade: 1..9
        assert_eq!(log_ticks(25.0, 60.0, 10), vec![30.0, 40.0, 50.0, 60.0]);
        // narrower still: linear round numbers
        let t = log_ticks(0.62, 0.85, 10);
        assert!(t.len() >= 3 && t.iter().all(|v| (0.62..=0.85).contains(v)), "{t:?}");
        assert_eq!(log_ticks(38.0, 42.0, 10), vec![38.0, 39.0, 40.0, 41.0, 42.0]);
        // never more than asked
        assert!(log_ticks(1e-3, 1e9, 4).len() <= 4);
        let axis = LogAxis::new(1.0, 100.0);
        assert_eq!(axis.map(&1.0, (0, 200)), 0);
        assert_eq!(axis.map(&10.0, (0, 200)), 100);
        assert_eq!(axis.map(&100.0, (0, 200)), 200);
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(20.0), "20");
        assert_eq!(tick(0.5), "0.5");
        assert_eq!(tick(0.001), "0.001");
        assert_eq!(tick(1500.0), "1500");
        assert_eq!(tick(2e6), "2e6");
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
        };
        let [png, svg] = write_figure(dir.path(), "output", &plot).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(std::fs::read(&png).unwrap()));
        let info = decoder.read_info().unwrap();
        assert_eq!((info.info().width, info.info().height), (WIDTH, HEIGHT));
        assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
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
        assert!(run(Target::Class(1)).output("x".into()).is_none());
        let plot = run(Target::Series((0..8).map(|k| k as f32).collect())).output("x".into()).unwrap();
        assert_eq!(plot.panels.len(), 2);
        assert_eq!(plot.panels[1].target, vec![(1.0, 1.0), (2.0, 3.0), (3.0, 5.0), (4.0, 7.0)]);
    }
}

/// The label of category `k` at axis position `x = k` (categories placed at 0, 1, 2, …);
/// empty between them.
fn category_label(x: f64, labels: &[String]) -> String {
    let k = x.round();
    if (x - k).abs() < 1e-6 && k >= 0.0 && (k as usize) < labels.len() {
        labels[k as usize].clone()
    } else {
        String::new()
    }
}

/// Mean ± sd of one figure per group, as points with error bars.
struct GroupComparison<'a> {
    title: &'a str,
    metric: &'a str,
    groups: &'a [(String, f64, f64)],
}

impl Figure for GroupComparison<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, self.title)?;
        let (lo, hi) = finite_range(self.groups.iter().flat_map(|(_, m, s)| [m - s, m + s])).unwrap_or((0.0, 1.0));
        let n = self.groups.len();
        let mut chart = ChartBuilder::on(&area)
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), padded(lo, hi))
            .map_err(drawing)?;
        let labels: Vec<String> = self.groups.iter().map(|(g, _, _)| g.clone()).collect();
        chart
            .configure_mesh()
            .x_labels(n.max(1))
            .x_label_formatter(&|x| category_label(*x, &labels))
            .y_label_formatter(&|y| tick(*y))
            .y_desc(self.metric)
            .label_style((FAMILY, LABEL_SIZE))
            .axis_desc_style((FAMILY, LABEL_SIZE))
            .disable_x_mesh()
            .draw()
            .map_err(drawing)?;
        for (k, (_, mean, sd)) in self.groups.iter().enumerate() {
            let x = k as f64;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, mean - sd), (x, mean + sd)],
                    BLACK.stroke_width(2),
                )))
                .map_err(drawing)?;
            chart.draw_series(std::iter::once(Circle::new((x, *mean), 6, LEARNED_COLOR.filled()))).map_err(drawing)?;
        }
        Ok(())
    }
}

/// Draws `<dir>/<stem>.{png,svg}`: one point (mean) with a bar (± sd) per group.
pub fn plot_groups(
    dir: &Path,
    stem: &str,
    title: &str,
    metric: &str,
    groups: &[(String, f64, f64)],
) -> Result<[PathBuf; 2]> {
    write_figure(dir, stem, &GroupComparison { title, metric, groups })
}

/// Colours of the series of a [`SeriesComparison`], in order (then repeated).
const SERIES_COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One line of a [`SeriesComparison`]: its label and, per x value, the runs' values.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, Vec<f64>)>,
}

/// A figure against a config value: per series, the mean over runs joined by a
/// line with a bar of ± one sample standard deviation, and every run as a small
/// dot beside it. The x values are placed evenly, in order, and labelled with
/// their values (hidden sizes 5, 20, 50, 100 are as readable as 1, 2, 3, 4 Hz).
/// The y axis includes 0.
struct SeriesComparison<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: &'a [Series],
}

impl Figure for SeriesComparison<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, self.title)?;
        // the legend in a column of its own, so it never hides data
        let (area, legend) = area.split_horizontally(WIDTH as i32 * 3 / 4);
        let mut xs: Vec<f64> = self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        let position = |x: f64| xs.iter().position(|v| *v == x).unwrap_or(0) as f64;
        let labels: Vec<String> = xs.iter().map(|x| tick(*x)).collect();
        let values = self.series.iter().flat_map(|s| s.points.iter().flat_map(|p| p.1.iter().copied()));
        let (lo, hi) = finite_range(values.chain([0.0])).unwrap_or((0.0, 1.0));
        let mut chart = ChartBuilder::on(&area)
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5f64..(xs.len() as f64 - 0.5), padded(lo, hi))
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_labels(xs.len().max(1))
            .x_label_formatter(&|x| category_label(*x, &labels))
            .y_label_formatter(&|y| tick(*y))
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .label_style((FAMILY, LABEL_SIZE))
            .axis_desc_style((FAMILY, LABEL_SIZE))
            .disable_x_mesh()
            .draw()
            .map_err(drawing)?;
        let n = self.series.len().max(1) as f64;
        for (k, series) in self.series.iter().enumerate() {
            let color = SERIES_COLORS[k % SERIES_COLORS.len()];
            let y = 40 + 28 * k as i32;
            legend
                .draw(&PathElement::new(vec![(0, y), (28, y)], color.stroke_width(3)))
                .and_then(|()| legend.draw(&Text::new(series.label.clone(), (36, y - 8), (FAMILY, LABEL_SIZE))))
                .map_err(drawing)?;
            // side by side around the x position (0.15 apart, within ±0.3), so bars and dots stay apart
            let width = (0.15 * (n - 1.0)).min(0.6);
            let offset = if n > 1.0 { -width / 2.0 + width * k as f64 / (n - 1.0) } else { 0.0 };
            let means: Vec<(f64, f64, f64)> = series
                .points
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(x, v)| {
                    let (mean, sd) = mean_sd(v);
                    (position(*x) + offset, mean, sd)
                })
                .collect();
            chart
                .draw_series(LineSeries::new(means.iter().map(|(x, m, _)| (*x, *m)), color.stroke_width(2)))
                .map_err(drawing)?;
            for (x, mean, sd) in &means {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(*x, mean - sd), (*x, mean + sd)],
                        color.stroke_width(2),
                    )))
                    .map_err(drawing)?;
                chart.draw_series(std::iter::once(Circle::new((*x, *mean), 5, color.filled()))).map_err(drawing)?;
            }
            let dots = series.points.iter().flat_map(|(x, v)| {
                v.iter().map(move |y| Circle::new((position(*x) + offset + 0.04, *y), 3, color.mix(0.6).filled()))
            });
            chart.draw_series(dots).map_err(drawing)?;
        }
        Ok(())
    }
}

/// Mean and sample standard deviation (0 for a single value).
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// Draws `<dir>/<stem>.{png,svg}`: one line per series against a config value,
/// mean ± sd over runs with every run as a dot.
pub fn plot_series(
    dir: &Path,
    stem: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<[PathBuf; 2]> {
    write_figure(dir, stem, &SeriesComparison { title, x_label, y_label, series })
}
