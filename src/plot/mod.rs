//! Plots of a run directory (`hetsyn plot`, and after `hetsyn train` unless
//! `--no-plots`): learning curves, learned versus initial time constants, a spike
//! raster of one test sample and, for regression tasks, its target and output;
//! and the figures that compare runs (`hetsyn summarize`, `report`, `figures`).
//!
//! Every figure is written to `<run>/plots/<name>.png` and `<name>.svg`, both
//! [`WIDTH`] × [`HEIGHT`] pixels, each atomically. Text is drawn with DejaVu Sans,
//! compiled into the binary (`assets/`), so no system font is needed; the SVGs
//! name it, with look-alike fallbacks ([`FAMILY`]).
//!
//! - `draw`: the drawing toolkit (font, `Figure` and `write_figure`, PNG
//!   encoding, axes and ticks, the log axis, colours, legends, the category chart
//!   and the runs' mean ± sd);
//! - `run`: the run's figures ([`plot_run`]; `SampleRun`, which simulates the
//!   network for the raster; `plots/output.csv`);
//! - `sweep`: the comparison figures ([`plot_groups`], [`plot_series`],
//!   [`plot_curves`], [`plot_bars`], [`plot_boxes`], [`plot_outputs`]).

mod draw;
mod run;
mod sweep;

pub use crate::train::tau_stats::tau_ms;
pub(crate) use draw::{
    category_chart, draw_legend, draw_spread, drawing, spread_axis, spread_bar, tick, titled, write_figure, Figure,
    CAPTION_SIZE, INITIAL_COLOR, LABEL_SIZE, LEARNED_COLOR, SERIES_COLORS, SPREAD_CAPTION,
};
pub use draw::{mean_sd, FAMILY, HEIGHT, WIDTH};
pub use run::{bin_counts, log_bins, plot_run, OutputPanel, Plotted, Taus, OUTPUT_CSV_COLUMNS};
pub use sweep::{
    plot_bars, plot_boxes, plot_curves, plot_groups, plot_outputs, plot_series, plot_series_within, BarSeries,
    BoxStats, Series,
};
