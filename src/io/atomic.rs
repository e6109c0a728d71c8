//! Atomic file writes, UTC timestamps and peak memory usage.

use anyhow::Context;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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

/// UTC timestamp "YYYYMMDD-HHMMSS" of the current time, for run directory names.
pub fn utc_timestamp() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format_utc(secs)
}

/// Formats Unix seconds as UTC "YYYYMMDD-HHMMSS" (proleptic Gregorian calendar).
fn format_utc(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let rem = unix_seconds % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // shift epoch to 0000-03-01
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
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
    fn format_utc_known_dates() {
        // Expected values checked with `date -u -d @N +%Y%m%d-%H%M%S`.
        let cases = [
            (0, "19700101-000000"),
            (86_399, "19700101-235959"),
            (86_400, "19700102-000000"),
            (951_782_400, "20000229-000000"),
            (978_307_199, "20001231-235959"),
            (1_234_567_890, "20090213-233130"),
            (1_709_208_000, "20240229-120000"),
            (1_795_824_000, "20261128-000000"),
            (4_102_444_800, "21000101-000000"),
            (253_402_300_799, "99991231-235959"),
        ];
        for (secs, want) in cases {
            assert_eq!(format_utc(secs), want, "unix seconds {secs}");
        }
    }

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
