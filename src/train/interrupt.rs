//! Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM (`kill`, Slurm's
//! time limit): the trainer finishes its iteration, writes a resumable
//! checkpoint and ends with [`Interrupted`]; the process exits with
//! `128 + signal` (130, 143), as shells do. A second signal while that
//! happens exits at once with the same status.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

/// The signal that asked training to stop (0: none).
static SIGNAL: AtomicUsize = AtomicUsize::new(0);
/// Set with [`SIGNAL`]; arms the immediate exit on a second signal.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Makes SIGINT and SIGTERM stop training after the current iteration.
pub fn install() -> Result<()> {
    for signal in [SIGINT, SIGTERM] {
        // the exit on a second signal is registered first, so the first only arms it
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, &STOPPING)
            .and_then(|_| signal_hook::flag::register_usize(signal, &SIGNAL, signal as usize))
            .and_then(|_| signal_hook::flag::register(signal, &STOPPING))
            .with_context(|| format!("cannot install the handler of signal {signal}"))?;
    }
    Ok(())
}

/// The signal received since [`install`], if any.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal as i32),
    }
}

/// The error a run stopped by a signal ends with, after its resumable checkpoint.
#[derive(Debug)]
pub struct Interrupted {
    pub signal: i32,
    pub message: String,
}

impl Interrupted {
    /// The exit status shells give a process ended by this signal.
    pub fn exit_code(&self) -> u8 {
        u8::try_from(128 + self.signal).unwrap_or(1)
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Interrupted {}
