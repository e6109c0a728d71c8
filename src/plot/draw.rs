//! The drawing toolkit of every figure: the embedded font, [`Figure`] and
//! [`write_figure`] (a PNG and an SVG of [`WIDTH`] × [`HEIGHT`], each written
//! atomically), titles, ticks and the log axis, legends, the house colours, and
//! the category chart with its runs' mean ± sd ([`category_chart`],
//! [`draw_spread`]) that the run's figures, the sweep figures and the paper's
//! figures are drawn with.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::io::atomic::write_atomic;

/// Width of every figure, pixels (PNG) or SVG user units.
pub const WIDTH: u32 = 1200;
/// Height of every figure, pixels (PNG) or SVG user units.
pub const HEIGHT: u32 = 800;

/// DejaVu Sans (licence: `assets/DejaVuSans-LICENSE.txt`).
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// The font family of every text: the embedded DejaVu Sans is registered under
/// this name (and under plotters' default, `sans-serif`), and SVG text names it as
/// its `font-family`, so a viewer without DejaVu Sans falls back to its
/// look-alikes (Bitstream Vera Sans, of which it is a derivative; Verdana), then
/// to any sans-serif font.
pub const FAMILY: &str = "DejaVu Sans, Bitstream Vera Sans, Verdana, sans-serif";
/// plotters' default family, for any text drawn without one.
const DEFAULT_FAMILY: &str = "sans-serif";

const TITLE_SIZE: u32 = 24;
pub(crate) const CAPTION_SIZE: u32 = 18;
pub(crate) const LABEL_SIZE: u32 = 15;

pub(crate) const LEARNED_COLOR: RGBColor = RGBColor(31, 119, 180);
pub(crate) const INITIAL_COLOR: RGBColor = RGBColor(214, 39, 40);

/// Something drawn onto any plotters backend (PNG buffer and SVG string alike).
pub(crate) trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// A drawing error as an `anyhow::Error` (its message).
pub(crate) fn drawing<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow!("drawing failed: {e}")
}

/// The legend of a panel's labelled series, in the house style.
pub(crate) fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
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
    let ok = *REGISTERED.get_or_init(|| {
        [FAMILY, DEFAULT_FAMILY]
            .iter()
            .all(|family| plotters::style::register_font(family, FontStyle::Normal, FONT).is_ok())
    });
    if ok {
        Ok(())
    } else {
        bail!("the embedded font (assets/DejaVuSans.ttf) cannot be read")
    }
}

/// Draws `figure` as `<dir>/<stem>.png` and `<dir>/<stem>.svg`, each written atomically.
pub(crate) fn write_figure(dir: &Path, stem: &str, figure: &impl Figure) -> Result<[PathBuf; 2]> {
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
pub(crate) fn titled<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str) -> Result<DrawingArea<DB, Shift>> {
    root.fill(&WHITE).map_err(drawing)?;
    root.titled(title, (FAMILY, TITLE_SIZE)).map_err(drawing)
}

/// `(lo, hi)` of the finite values, or `None`.
pub(crate) fn finite_range(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A linear axis range around `(lo, hi)` with 5 % margins (never empty).
pub(super) fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let span = hi - lo;
    let pad = if span > 0.0 { 0.05 * span } else { 0.5 * lo.abs().max(1.0) };
    (lo - pad)..(hi + pad)
}

/// Tick labels without trailing noise: 0.001, 0.5, 20, 1.5e4.
pub(crate) fn tick(v: f64) -> String {
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
/// over any span: powers of ten, then 1-3, 1-2-5, 1-2-3-5 or 1..9 per decade, and plain
/// linear ticks when the span is narrower than a decade has to offer
/// (plotters' own log axis puts ticks at powers of ten only).
#[derive(Debug, Clone)]
pub(super) struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    pub(super) fn new(lo: f64, hi: f64) -> LogAxis {
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
    for mantissas in [
        &[1.0][..],
        &[1.0, 3.0],
        &[1.0, 2.0, 5.0],
        &[1.0, 2.0, 3.0, 5.0],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
    ] {
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

/// The label of category `k` at axis position `x = k` (categories placed at 0, 1, 2, …);
/// empty between them.
pub(crate) fn category_label(x: f64, labels: &[String]) -> String {
    let k = x.round();
    if (x - k).abs() < 1e-6 && k >= 0.0 && (k as usize) < labels.len() {
        labels[k as usize].clone()
    } else {
        String::new()
    }
}

/// What the bars and dots of the group and series figures are.
pub(crate) const SPREAD_CAPTION: &str =
    "mean ± sd (sample standard deviation) over the n runs of each group; dots: single runs";

/// A y range from 0 (when every value is ≥ 0, as accuracies and losses are)
/// to `hi` with a 5 % margin above; a range with negative values is [`padded`].
pub(crate) fn from_zero(lo: f64, hi: f64) -> Range<f64> {
    if lo >= 0.0 {
        0.0..if hi > 0.0 { 1.05 * hi } else { 1.0 }
    } else {
        padded(lo, hi.max(0.0))
    }
}

/// The ends of a bar of mean ± sd, clipped to `valid` (an accuracy never exceeds 1).
pub(crate) fn spread_bar(mean: f64, sd: f64, valid: Option<(f64, f64)>) -> (f64, f64) {
    match valid {
        Some((a, b)) => ((mean - sd).max(a), (mean + sd).min(b)),
        None => (mean - sd, mean + sd),
    }
}

/// The y axis of runs' values and their mean ± sd bars (clipped to `valid`): from 0
/// when every value is ≥ 0 ([`from_zero`]).
pub(crate) fn spread_axis<'v>(groups: impl Iterator<Item = &'v [f64]>, valid: Option<(f64, f64)>) -> Range<f64> {
    let mut ends = Vec::new();
    for values in groups.filter(|v| !v.is_empty()) {
        let (mean, sd) = mean_sd(values);
        let (low, high) = spread_bar(mean, sd, valid);
        ends.extend(values.iter().copied().chain([low, high]));
    }
    let (lo, hi) = finite_range(ends).unwrap_or((0.0, 1.0));
    from_zero(lo, hi)
}

/// A chart of categories placed at x = 0, 1, … and named `labels`, over `y`, in the
/// house style (an optional caption line, axis descriptions in words).
pub(crate) fn category_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: Option<&str>,
    labels: &[String],
    x_desc: &str,
    y_desc: &str,
    y: Range<f64>,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let n = labels.len();
    let mut builder = ChartBuilder::on(area);
    if let Some(caption) = caption {
        builder.caption(caption, (FAMILY, CAPTION_SIZE));
    }
    let mut chart = builder
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), y)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_labels(n.max(1))
        .x_label_formatter(&|x| category_label(*x, labels))
        .y_label_formatter(&|y| tick(*y))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FAMILY, LABEL_SIZE))
        .axis_desc_style((FAMILY, LABEL_SIZE))
        .disable_x_mesh()
        .draw()
        .map_err(drawing)?;
    Ok(chart)
}

/// Draws the runs' `values` at `x` in `color`: the mean as a disc with a bar of
/// ± one sample standard deviation (capped), and every run as a smaller dot just
/// right of it (equal values side by side); returns the mean (`None` for no values).
pub(crate) fn draw_spread<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    x: f64,
    values: &[f64],
    color: RGBColor,
    valid: Option<(f64, f64)>,
) -> Result<Option<f64>> {
    if values.is_empty() {
        return Ok(None);
    }
    let (mean, sd) = mean_sd(values);
    let (lo, hi) = spread_bar(mean, sd, valid);
    let cap = 0.03;
    let bar = [vec![(x, lo), (x, hi)], vec![(x - cap, lo), (x + cap, lo)], vec![(x - cap, hi), (x + cap, hi)]];
    chart.draw_series(bar.into_iter().map(|p| PathElement::new(p, color.stroke_width(2)))).map_err(drawing)?;
    chart.draw_series([Circle::new((x, mean), 6, color.filled())]).map_err(drawing)?;
    // runs with equal values side by side
    let dots = values.iter().enumerate().map(|(k, v)| {
        let twins = values[..k].iter().filter(|w| *w == v).count();
        Circle::new((x + 0.06 + 0.03 * twins as f64, *v), 3, color.mix(0.5).filled())
    });
    chart.draw_series(dots).map_err(drawing)?;
    Ok(Some(mean))
}

/// Colours of the series of a [`SeriesComparison`](super::sweep::SeriesComparison), in order (then repeated).
pub(crate) const SERIES_COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Mean and sample standard deviation (0 for a single value).
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The texts of an SVG, in order, unescaped.
    pub(crate) fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| t.split_once('>').and_then(|(_, rest)| rest.split_once("</text>")).map(|(text, _)| text))
            .map(|t| {
                let t =
                    t.trim().replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'");
                t.replace("&amp;", "&")
            })
            .collect()
    }

    /// How often `text` is a whole text of `svg`.
    pub(crate) fn count_text(svg: &str, text: &str) -> usize {
        svg_texts(svg).iter().filter(|t| *t == text).count()
    }

    #[test]
    fn log_axis_ticks() {
        // wide: powers of ten
        assert_eq!(log_ticks(0.5, 20000.0, 10), vec![1.0, 10.0, 100.0, 1000.0, 10000.0]);
        // a decade or two: 1-2-5, 1-2-3-5
        assert_eq!(log_ticks(3.0, 60.0, 10), vec![5.0, 10.0, 20.0, 50.0]);
        assert_eq!(log_ticks(18.0, 150.0, 10), vec![20.0, 30.0, 50.0, 100.0]);
        // three decades in a narrow panel: 1-3
        assert_eq!(log_ticks(15.0, 8000.0, 5), vec![30.0, 100.0, 300.0, 1000.0, 3000.0]);
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

    /// Every text of an SVG names the embedded font first, with fallbacks.
    #[test]
    fn svg_names_the_embedded_font() {
        assert!(FAMILY.starts_with("DejaVu Sans,") && FAMILY.ends_with("sans-serif"));
        let dir = tempfile::tempdir().unwrap();
        let [_, svg] = crate::plot::plot_groups(dir.path(), "g", "title", "m", &[("a".into(), vec![1.0])]).unwrap();
        let svg = std::fs::read_to_string(svg).unwrap();
        let families: Vec<&str> =
            svg.split("font-family=\"").skip(1).map(|rest| rest.split('"').next().unwrap()).collect();
        assert!(!families.is_empty());
        assert!(families.iter().all(|f| *f == FAMILY), "{families:?}");
    }
}
