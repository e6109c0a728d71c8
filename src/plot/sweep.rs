//! The figures that compare runs, drawn by `hetsyn summarize`, `hetsyn report`
//! and `hetsyn figures`: per group or against a config value, the runs' values as
//! dots with their mean ± sd ([`plot_groups`], [`plot_series`],
//! [`plot_series_within`]), learning curves ([`plot_curves`]), grouped bars
//! ([`plot_bars`]), box plots ([`plot_boxes`]) and output traces ([`plot_outputs`]).

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::draw::{
    category_chart, draw_spread, drawing, finite_range, from_zero, mean_sd, spread_axis, tick, titled, write_figure,
    Figure, FAMILY, LABEL_SIZE, LEARNED_COLOR, SERIES_COLORS, SPREAD_CAPTION, WIDTH,
};
use super::run::{OutputPanel, OutputPlot};

/// Per group, every run's value as a dot and their mean ± sd.
struct GroupComparison<'a> {
    title: &'a str,
    metric: &'a str,
    /// `(label, the runs' values)` per group.
    groups: &'a [(String, Vec<f64>)],
}

impl Figure for GroupComparison<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, self.title)?;
        let y = spread_axis(self.groups.iter().map(|(_, v)| &v[..]), None);
        let labels: Vec<String> = self.groups.iter().map(|(g, v)| format!("{g} (n = {})", v.len())).collect();
        let mut chart = category_chart(&area, Some(SPREAD_CAPTION), &labels, "", self.metric, y)?;
        for (k, (_, values)) in self.groups.iter().enumerate() {
            draw_spread(&mut chart, k as f64, values, LEARNED_COLOR, None)?;
        }
        Ok(())
    }
}

/// Draws `<dir>/<stem>.{png,svg}`: per group `(label, the runs' values)`, every
/// run as a dot and their mean ± sd; the y axis starts at 0 for values ≥ 0.
pub fn plot_groups(
    dir: &Path,
    stem: &str,
    title: &str,
    metric: &str,
    groups: &[(String, Vec<f64>)],
) -> Result<[PathBuf; 2]> {
    write_figure(dir, stem, &GroupComparison { title, metric, groups })
}

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
/// The y axis starts at 0 when every value is ≥ 0.
struct SeriesComparison<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: &'a [Series],
    /// The range the figure's values can take; bars are clipped to it.
    valid: Option<(f64, f64)>,
}

/// The x values of `series` placed evenly in order: the position of each (0, 1,
/// …) and their tick labels.
fn categories(series: &[Series]) -> (impl Fn(f64) -> f64, Vec<String>) {
    let mut xs: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let labels: Vec<String> = xs.iter().map(|x| tick(*x)).collect();
    (move |x: f64| xs.iter().position(|v| *v == x).unwrap_or(0) as f64, labels)
}

impl Figure for SeriesComparison<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, self.title)?;
        // the legend in a column of its own, so it never hides data
        let (area, legend) = area.split_horizontally(WIDTH as i32 * 3 / 4);
        let (position, labels) = categories(self.series);
        let y = spread_axis(self.series.iter().flat_map(|s| s.points.iter().map(|(_, v)| &v[..])), self.valid);
        let mut chart = category_chart(&area, None, &labels, self.x_label, self.y_label, y)?;
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
            let mut means = Vec::new();
            for (x, values) in &series.points {
                let x = position(*x) + offset;
                means.extend(draw_spread(&mut chart, x, values, color, self.valid)?.map(|mean| (x, mean)));
            }
            chart.draw_series(LineSeries::new(means, color.stroke_width(2))).map_err(drawing)?;
        }
        Ok(())
    }
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
    write_figure(dir, stem, &SeriesComparison { title, x_label, y_label, series, valid: None })
}

/// [`plot_series`] of a figure whose values lie in `valid` (an accuracy in
/// [0, 1]): the ± sd bars are clipped to it.
pub fn plot_series_within(
    dir: &Path,
    stem: &str,
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[Series],
    valid: (f64, f64),
) -> Result<[PathBuf; 2]> {
    write_figure(dir, stem, &SeriesComparison { title, x_label, y_label, series, valid: Some(valid) })
}

/// Learning curves: per series, the mean over runs at each x (iteration) as a
/// line, and mean ± sd (clipped to `valid`) as two thin lines of its colour.
struct CurveComparison<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: &'a [Series],
    valid: (f64, f64),
}

impl Figure for CurveComparison<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, self.title)?;
        let (area, legend) = area.split_horizontally(WIDTH as i32 * 3 / 4);
        let xs = self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let (x_lo, x_hi) = finite_range(xs).unwrap_or((0.0, 1.0));
        let clip = |v: f64| v.clamp(self.valid.0, self.valid.1);
        let bands: Vec<Vec<(f64, f64, f64, f64)>> = self
            .series
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(x, v)| {
                        let (mean, sd) = mean_sd(v);
                        (*x, mean, clip(mean - sd), clip(mean + sd))
                    })
                    .collect()
            })
            .collect();
        let ys = bands.iter().flatten().flat_map(|b| [b.2, b.3]);
        let (lo, hi) = finite_range(ys).unwrap_or((0.0, 1.0));
        let mut chart = ChartBuilder::on(&area)
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d(x_lo..x_hi.max(x_lo + 1.0), from_zero(lo, hi))
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_label_formatter(&|x| tick(*x))
            .y_label_formatter(&|y| tick(*y))
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .label_style((FAMILY, LABEL_SIZE))
            .axis_desc_style((FAMILY, LABEL_SIZE))
            .draw()
            .map_err(drawing)?;
        for (k, (series, band)) in self.series.iter().zip(&bands).enumerate() {
            let color = SERIES_COLORS[k % SERIES_COLORS.len()];
            let y = 40 + 28 * k as i32;
            let runs = series.points.iter().map(|p| p.1.len()).max().unwrap_or(0);
            legend
                .draw(&PathElement::new(vec![(0, y), (28, y)], color.stroke_width(3)))
                .and_then(|()| {
                    legend.draw(&Text::new(format!("{} (n = {runs})", series.label), (36, y - 8), (FAMILY, LABEL_SIZE)))
                })
                .map_err(drawing)?;
            for edge in [2, 3] {
                let line = band.iter().map(|b| (b.0, if edge == 2 { b.2 } else { b.3 }));
                chart.draw_series(LineSeries::new(line, color.mix(0.35).stroke_width(1))).map_err(drawing)?;
            }
            chart
                .draw_series(LineSeries::new(band.iter().map(|b| (b.0, b.1)), color.stroke_width(2)))
                .map_err(drawing)?;
        }
        Ok(())
    }
}

/// Draws `<dir>/<stem>.{png,svg}`: learning curves, mean over runs per series
/// (thin lines: ± one sample standard deviation, clipped to `valid`).
pub fn plot_curves(
    dir: &Path,
    stem: &str,
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[Series],
    valid: (f64, f64),
) -> Result<[PathBuf; 2]> {
    write_figure(dir, stem, &CurveComparison { title, x_label, y_label, series, valid })
}

/// One series of a grouped-bar figure: its name and, per category,
/// `(value in [0, 1], label)`, or `None` where it has no runs.
pub type BarSeries = (String, Vec<Option<(f64, String)>>);

/// Grouped bars: per x category, one bar per series of height `value` in
/// [0, 1] labelled `label` (e.g. a success rate and its k/n).
struct BarComparison<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    categories: &'a [String],
    /// Per series: its name and, per category, `(value, label)` (None: no runs).
    series: &'a [BarSeries],
}

impl Figure for BarComparison<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, self.title)?;
        let (area, legend) = area.split_horizontally(WIDTH as i32 * 3 / 4);
        let mut chart = category_chart(&area, None, self.categories, self.x_label, self.y_label, 0.0..1.1)?;
        let count = self.series.len().max(1) as f64;
        let width = 0.8 / count;
        for (k, (name, bars)) in self.series.iter().enumerate() {
            let color = SERIES_COLORS[k % SERIES_COLORS.len()];
            let y = 40 + 28 * k as i32;
            legend
                .draw(&Rectangle::new([(0, y - 8), (24, y + 8)], color.filled()))
                .and_then(|()| legend.draw(&Text::new(name.clone(), (36, y - 8), (FAMILY, LABEL_SIZE))))
                .map_err(drawing)?;
            for (c, bar) in bars.iter().enumerate() {
                let Some((value, label)) = bar else { continue };
                let x0 = c as f64 - 0.4 + width * k as f64;
                chart
                    .draw_series([Rectangle::new(
                        [(x0, 0.0), (x0 + width * 0.9, value.clamp(0.0, 1.0))],
                        color.filled(),
                    )])
                    .map_err(drawing)?;
                let style = (FAMILY, LABEL_SIZE * 2 / 3).into_font().color(&BLACK);
                chart
                    .draw_series([Text::new(label.clone(), (x0, value.clamp(0.0, 1.0) + 0.05), style)])
                    .map_err(drawing)?;
            }
        }
        Ok(())
    }
}

/// Draws `<dir>/<stem>.{png,svg}`: grouped bars in [0, 1] with a label each.
pub fn plot_bars(
    dir: &Path,
    stem: &str,
    title: &str,
    (x_label, y_label): (&str, &str),
    categories: &[String],
    series: &[BarSeries],
) -> Result<[PathBuf; 2]> {
    write_figure(dir, stem, &BarComparison { title, x_label, y_label, categories, series })
}

/// Draws `<dir>/<stem>.{png,svg}`: per panel, a readout against its target over
/// time (ms), with `windows` (label, ms) shaded in every panel and labelled in
/// the first (e.g. the repeats of the pattern task's frozen segment).
pub fn plot_outputs(
    dir: &Path,
    stem: &str,
    title: &str,
    panels: Vec<OutputPanel>,
    windows: Vec<(String, Range<f64>)>,
) -> Result<[PathBuf; 2]> {
    let end = panels.iter().flat_map(|p| p.target.iter().chain(&p.output)).map(|(t, _)| *t).fold(0.0, f64::max);
    let plot = OutputPlot { title: title.to_string(), steps: end.ceil() as usize, dt_ms: 1.0, panels, windows };
    write_figure(dir, stem, &plot)
}

/// Tukey's box of a set of values: quartiles (linear interpolation between
/// order statistics), whiskers at the furthest values within 1.5 IQR of the
/// box, and the values beyond them.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxStats {
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub whiskers: (f64, f64),
    pub outliers: Vec<f64>,
}

impl BoxStats {
    /// `None` for no finite values.
    pub fn of(values: &[f64]) -> Option<BoxStats> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let quantile = |q: f64| {
            let h = q * (v.len() - 1) as f64;
            let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
            v[lo] + (h - lo as f64) * (v[hi] - v[lo])
        };
        let (q1, median, q3) = (quantile(0.25), quantile(0.5), quantile(0.75));
        let (fence_lo, fence_hi) = (q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1));
        let inside: Vec<f64> = v.iter().copied().filter(|x| (fence_lo..=fence_hi).contains(x)).collect();
        let whiskers = (inside.first().copied().unwrap_or(q1), inside.last().copied().unwrap_or(q3));
        let outliers = v.iter().copied().filter(|x| !(fence_lo..=fence_hi).contains(x)).collect();
        Some(BoxStats { q1, median, q3, whiskers, outliers })
    }
}

/// Box plots against a config value: per x, one box per series side by side
/// ([`BoxStats`]; outliers as dots), x values placed evenly and labelled.
struct BoxComparison<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: &'a [Series],
}

impl Figure for BoxComparison<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = titled(root, self.title)?;
        let (area, legend) = area.split_horizontally(WIDTH as i32 * 3 / 4);
        let (position, labels) = categories(self.series);
        let all = self.series.iter().flat_map(|s| s.points.iter().flat_map(|(_, v)| v.iter().copied()));
        let (lo, hi) = finite_range(all).unwrap_or((0.0, 1.0));
        let mut chart = category_chart(&area, None, &labels, self.x_label, self.y_label, from_zero(lo, hi))?;
        let n = self.series.len().max(1) as f64;
        let width = 0.8 / n;
        for (k, series) in self.series.iter().enumerate() {
            let color = SERIES_COLORS[k % SERIES_COLORS.len()];
            let y = 40 + 28 * k as i32;
            let runs: usize = series.points.iter().map(|p| p.1.len()).sum();
            legend
                .draw(&Rectangle::new([(0, y - 8), (24, y + 8)], color.mix(0.4).filled()))
                .and_then(|()| {
                    legend.draw(&Text::new(format!("{} ({runs} runs)", series.label), (36, y - 8), (FAMILY, LABEL_SIZE)))
                })
                .map_err(drawing)?;
            for (x, values) in &series.points {
                let Some(b) = BoxStats::of(values) else { continue };
                let x0 = position(*x) - 0.4 + width * k as f64 + 0.05 * width;
                let (x1, mid) = (x0 + 0.9 * width, x0 + 0.45 * width);
                let line = color.stroke_width(2);
                chart
                    .draw_series([
                        Rectangle::new([(x0, b.q1), (x1, b.q3)], color.mix(0.4).filled()),
                        Rectangle::new([(x0, b.q1), (x1, b.q3)], line),
                    ])
                    .map_err(drawing)?;
                let strokes = [
                    vec![(x0, b.median), (x1, b.median)],
                    vec![(mid, b.q3), (mid, b.whiskers.1)],
                    vec![(mid, b.q1), (mid, b.whiskers.0)],
                    vec![(mid - 0.2 * width, b.whiskers.1), (mid + 0.2 * width, b.whiskers.1)],
                    vec![(mid - 0.2 * width, b.whiskers.0), (mid + 0.2 * width, b.whiskers.0)],
                ];
                chart.draw_series(strokes.into_iter().map(|p| PathElement::new(p, line))).map_err(drawing)?;
                chart
                    .draw_series(b.outliers.iter().map(|v| Circle::new((mid, *v), 3, color.filled())))
                    .map_err(drawing)?;
            }
        }
        Ok(())
    }
}

/// Draws `<dir>/<stem>.{png,svg}`: box plots of the runs' values per series
/// against a config value ([`BoxStats`]).
pub fn plot_boxes(
    dir: &Path,
    stem: &str,
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[Series],
) -> Result<[PathBuf; 2]> {
    write_figure(dir, stem, &BoxComparison { title, x_label, y_label, series })
}

#[cfg(test)]
mod tests {
    use super::super::draw::tests::count_text;
    use super::*;

    #[test]
    fn box_stats_are_tukeys() {
        // quartiles by linear interpolation: 1..=9 gives 3, 5, 7; 100 is beyond 7 + 1.5 * 4
        let b = BoxStats::of(&[9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 100.0, f64::NAN]).unwrap();
        assert_eq!((b.q1, b.median, b.q3), (3.25, 5.5, 7.75));
        assert_eq!(b.whiskers, (1.0, 9.0));
        assert_eq!(b.outliers, vec![100.0]);
        let one = BoxStats::of(&[4.0]).unwrap();
        assert_eq!((one.q1, one.median, one.q3, one.whiskers), (4.0, 4.0, 4.0, (4.0, 4.0)));
        assert!(BoxStats::of(&[f64::NAN]).is_none());
    }

    /// Group figure: accuracy axis from 0, a dot per run, and what the bars are.
    #[test]
    fn group_plot_shows_runs_from_zero() {
        assert_eq!(from_zero(0.498, 0.512).start, 0.0);
        assert!(from_zero(0.498, 0.512).end > 0.512);
        assert!(from_zero(-1.0, 2.0).start < -1.0, "negative values stay in view");
        let dir = tempfile::tempdir().unwrap();
        let groups = [("a".to_string(), vec![0.5, 0.51, 0.5]), ("b".to_string(), vec![0.498, 0.512])];
        let [_, svg] = plot_groups(dir.path(), "g", "title", "test_accuracy", &groups).unwrap();
        let svg = std::fs::read_to_string(svg).unwrap();
        // 5 runs and 2 means
        assert_eq!(svg.matches("<circle").count(), 7, "{svg}");
        for text in [SPREAD_CAPTION, "a (n = 3)", "b (n = 2)"] {
            assert_eq!(count_text(&svg, text), 1, "{text}");
        }
    }
}
