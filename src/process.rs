//! Set-up of the `hetsyn` process before any work: the floating-point mode of
//! every computing thread, the worker pool, and the allocator's thresholds.

use anyhow::{Context, Result};

/// Tunes this process: subnormals flushed to zero on this thread (the worker
/// threads do the same as they start, see [`init_threads`]) and freed buffers
/// kept for reuse ([`keep_freed_buffers`]).
pub fn tune() {
    crate::model::flush_subnormals_to_zero();
    keep_freed_buffers();
}

/// Starts the global worker pool with `threads` threads (0: one per core),
/// each flushing subnormals to zero, so that results do not depend on which
/// thread did the work.
pub fn init_threads(threads: usize) -> Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .start_handler(|_| crate::model::flush_subnormals_to_zero())
        .build_global()
        .context("cannot start the worker threads")
}

/// Runs `work` on a thread of the worker pool, the caller waiting. A loop that
/// alternates serial work with parallel loops (the trainer's) then hands each
/// parallel loop to the pool from inside it: the other workers are woken, but
/// no waiting thread outside the pool must be, twice per loop. For a small
/// network, whose iteration takes about a millisecond, those hand-offs cost
/// more than a tenth of its time.
pub fn in_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}

/// Lets glibc keep freed blocks of up to 4 MiB for reuse instead of unmapping
/// them (by default it maps every block above 128 KiB afresh and trims the
/// heap's top). A training step allocates per-sample buffers of 100 KiB–1 MiB
/// (tapes, chunk gradients, dropout words) and frees them again, and each fresh
/// mapping costs zeroed pages: `hetsyn bench --threads 2` took 24,000–44,000
/// page faults and 3–5 % of its CPU time in the kernel, with this about 4,100
/// faults and under 1 %. Peak memory is the same (measured for every model); larger
/// blocks (data sets) are still returned to the system.
pub fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers and only changes allocator parameters
    // (it returns 0 when it refuses, which leaves the defaults).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
}
