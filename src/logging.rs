//! Log output: to stderr (coloured only when asked for or on a terminal, and
//! never with `NO_COLOR` set), and, once a run has started, appended without
//! colour to the run's `train.log`.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// When log output to stderr is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless the environment sets `NO_COLOR`.
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether stderr gets colour (`no_color`: the value of `NO_COLOR`, if set).
    pub fn ansi(self, stderr_is_terminal: bool, no_color: Option<&str>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stderr_is_terminal && no_color.is_none_or(str::is_empty),
        }
    }
}

/// The run's log file, once [`tee_to`] opened it.
static LOG_FILE: Mutex<Option<File>> = Mutex::new(None);

/// Sets up logging: stderr at `level`, and the run log at `level` or INFO,
/// whichever says more (so `train.log` keeps the evaluations of a `-q` run).
pub fn init(level: tracing::Level, color: ColorChoice) {
    let no_color = std::env::var("NO_COLOR").ok();
    let ansi = color.ansi(std::io::stderr().is_terminal(), no_color.as_deref());
    let file_level = LevelFilter::from_level(level).max(LevelFilter::INFO);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_target(false)
                .with_filter(LevelFilter::from_level(level)),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(RunLog)
                .with_ansi(false)
                .with_target(false)
                .with_filter(file_level),
        )
        .init();
}

/// From now on, appends log lines to `path` (a resumed run continues its log).
pub fn tee_to(path: &Path) -> Result<()> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the run log {}", path.display()))?;
    *LOG_FILE.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
    Ok(())
}

/// Appends a line to the run log, if one is open (lines printed besides the log).
pub fn line(text: &str) {
    let _ = RunLog.write_all(format!("{text}\n").as_bytes());
}

/// Writes to the run log if one is open, else nowhere.
#[derive(Clone, Copy)]
struct RunLog;

impl Write for RunLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(file) = LOG_FILE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            file.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for RunLog {
    type Writer = RunLog;
    fn make_writer(&'a self) -> RunLog {
        RunLog
    }
}

/// `x` with 4 significant figures (scientific notation when very small or large).
pub fn sig4(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-4..6).contains(&magnitude) {
        return format!("{x:.3e}");
    }
    format!("{x:.*}", (3 - magnitude).max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_choice() {
        assert!(ColorChoice::Auto.ansi(true, None));
        assert!(ColorChoice::Auto.ansi(true, Some("")), "an empty NO_COLOR does not count");
        assert!(!ColorChoice::Auto.ansi(true, Some("1")));
        assert!(!ColorChoice::Auto.ansi(false, None));
        assert!(ColorChoice::Always.ansi(false, Some("1")));
        assert!(!ColorChoice::Never.ansi(true, None));
    }

    #[test]
    fn four_significant_figures() {
        assert_eq!(sig4(1.188086919788179), "1.188");
        assert_eq!(sig4(17.77777777777778), "17.78");
        assert_eq!(sig4(0.0123456), "0.01235");
        assert_eq!(sig4(12345.6), "12346");
        assert_eq!(sig4(-2.5), "-2.500");
        assert_eq!(sig4(1.5e-7), "1.500e-7");
        assert_eq!(sig4(0.0), "0");
    }
}
