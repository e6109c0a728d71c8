//! Atomic file writes, UTC timestamps and peak memory usage.

use anyhow::Context;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temp files created by different calls within one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically: a temp file in the same directory
/// (name starting with '.' and containing the pid), write_all, fsync, rename
/// over `path`, then fsync the directory (best effort). A reader never sees
/// a partial file. Errors carry context naming the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let file_name =
        path.file_name().with_context(|| format!("cannot write {}: path has no file name", path.display()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };

    let (tmp_path, mut file) = create_temp(&dir, &file_name.to_string_lossy())
        .with_context(|| format!("cannot write {}: cannot create temp file", path.display()))?;

    let result = (|| -> anyhow::Result<()> {
        file.write_all(bytes).with_context(|| format!("cannot write {}", tmp_path.display()))?;
        file.sync_all().with_context(|| format!("cannot fsync {}", tmp_path.display()))?;
        drop(file);
        fs::rename(&tmp_path, path)
            .with_context(|| format!("cannot rename {} to {}", tmp_path.display(), path.display()))?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp_path);
        return Err(e.context(format!("cannot write {}", path.display())));
    }

    // Persist the rename itself; not every platform/filesystem supports this.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Checks, before long work, that [`write_atomic`] will be able to write
/// `path`: creates and removes a temp file in its directory.
pub fn check_writable(path: &Path) -> anyhow::Result<()> {
    let file_name =
        path.file_name().with_context(|| format!("cannot write {}: path has no file name", path.display()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (tmp, file) = create_temp(&dir, &file_name.to_string_lossy())
        .with_context(|| format!("cannot write {} (directory {})", path.display(), dir.display()))?;
    drop(file);
    let _ = fs::remove_file(tmp);
    Ok(())
}

/// Creates a fresh temp file `.<name>.<pid>.<n>.tmp` in `dir` (never reusing an existing one).
fn create_temp(dir: &Path, name: &str) -> std::io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    loop {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{pid}.{n}.tmp"));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The current time in UTC as `YYYYMMDD-HHMMSS` (run-directory names, log lines).
pub fn utc_timestamp() -> String {
    jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string()
}

/// Peak resident set size of this process in bytes, from
/// `getrusage(RUSAGE_SELF).ru_maxrss` (KiB on Linux, bytes on macOS). 0 on failure.
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: `rusage` is plain old data, so all-zero is a valid value, and
    // getrusage only writes into the struct we pass.
    let (rc, usage) = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let rc = libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        (rc, usage)
    };
    if rc != 0 {
        return 0;
    }
    let maxrss = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    if cfg!(target_os = "macos") {
        maxrss
    } else {
        maxrss.saturating_mul(1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamp_shape() {
        let t = utc_timestamp();
        assert_eq!(t.len(), 15, "{t}");
        assert_eq!(&t[8..9], "-");
        assert!(t.chars().enumerate().all(|(i, c)| i == 8 || c.is_ascii_digit()), "{t}");
        assert!(t.as_str() >= "20240101-000000", "{t}");
    }

    #[test]
    fn peak_rss_is_plausible() {
        let rss = peak_rss_bytes();
        assert!(rss > 1 << 20, "peak rss {rss} bytes is implausibly small");
        assert!(rss < 1 << 40, "peak rss {rss} bytes is implausibly large");
    }

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn write_atomic_creates_and_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.bin");
        write_atomic(&p, b"first version, longer").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"first version, longer");
        write_atomic(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        write_atomic(&p, b"").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"");
        assert_eq!(dir_entries(dir.path()), vec!["out.bin".to_string()]);
    }

    #[test]
    fn write_atomic_error_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no_such_dir").join("out.bin");
        let err = write_atomic(&p, b"x").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(dir_entries(dir.path()).is_empty());
    }

    #[test]
    fn write_atomic_onto_directory_fails_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), b"k").unwrap();
        let err = write_atomic(&target, b"x").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(&target.display().to_string()), "{msg}");
        assert_eq!(dir_entries(dir.path()), vec!["sub".to_string()]);
    }
}
