//! A run directory and everything in it. [`RunDir`] owns the layout, so no
//! other module spells a path inside a run:
//!
//! ```text
//! <run>/config.toml            the resolved config (re-runnable)
//! <run>/metrics.csv            one row per evaluation
//! <run>/summary.json           the labelled figures, at the end
//! <run>/train.log              the log of every process of the run, appended
//! <run>/checkpoints/best.safetensors          selected on validation
//! <run>/checkpoints/best_on_test.safetensors  with output.save_best_on_test
//! <run>/checkpoints/last.safetensors          resumable
//! <run>/checkpoints/<stem>.eval.csv           `hetsyn eval` of that checkpoint
//! <run>/plots/                 `hetsyn plot`
//! <run>/.lock                  held while a process writes the run
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::io::atomic::write_atomic;
use crate::checkpoint::{self, Checkpoint};

/// The checkpoints a run writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// The model selected on the validation set.
    Best,
    /// The model with the best test figure (`output.save_best_on_test`).
    BestOnTest,
    /// The latest model, with what `--resume` needs.
    Last,
}

impl Saved {
    pub fn stem(self) -> &'static str {
        match self {
            Saved::Best => "best",
            Saved::BestOnTest => "best_on_test",
            Saved::Last => "last",
        }
    }

    /// The file's path inside the run directory, e.g. `checkpoints/best.safetensors`.
    pub fn relative_path(self) -> String {
        format!("checkpoints/{}.safetensors", self.stem())
    }

    /// The checkpoint whose evaluation a run reports, in order of preference:
    /// the model selected on validation; without a validation set the best on
    /// test (the published protocol, when saved), else the last.
    pub const REPORTED: [Saved; 3] = [Saved::Best, Saved::BestOnTest, Saved::Last];
}

/// A run directory opened for training by this process ([`RunDir::open`]);
/// it holds the run's lock for as long as it lives.
pub struct OpenRun {
    dir: RunDir,
    _lock: RunLock,
}

impl std::ops::Deref for OpenRun {
    type Target = RunDir;

    fn deref(&self) -> &RunDir {
        &self.dir
    }
}

/// How many levels below a directory [`RunDir::find`] looks for runs.
pub const SEARCH_DEPTH: usize = 4;

/// The directory of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// The run directory at `path` (nothing is read or created).
    pub fn at(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }

    /// Creates the default run directory `<parent>/<name>-<UTC timestamp>`, with
    /// a numeric suffix (`-1`, `-2`, ...) if that exists already. Creating is the
    /// claim, so two runs started in the same second never share a directory.
    pub fn reserve(parent: &Path, name: &str) -> Result<RunDir> {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create output.dir {}", parent.display()))?;
        let base = parent.join(format!("{name}-{}", crate::io::atomic::utc_timestamp()));
        let mut dir = base.clone();
        for k in 1..10_000 {
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(RunDir { path: dir }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    dir = PathBuf::from(format!("{}-{k}", base.display()));
                }
                Err(e) => return Err(e).with_context(|| format!("cannot create run directory {}", dir.display())),
            }
        }
        bail!("cannot find a free run directory name next to {}", base.display())
    }

    /// The runs at or below `root` (at most [`SEARCH_DEPTH`] levels down),
    /// sorted: the directories `is_run` accepts, not looked into further (the
    /// one scan of `hetsyn summarize`, `record`, `figures` and `verify`).
    pub fn find(root: &Path, is_run: impl Fn(&RunDir) -> bool) -> Result<Vec<RunDir>> {
        let mut runs = Vec::new();
        let mut stack = vec![(root.to_path_buf(), 0)];
        while let Some((dir, depth)) = stack.pop() {
            let run = RunDir::at(dir);
            if is_run(&run) {
                runs.push(run);
            } else if depth < SEARCH_DEPTH {
                let entries = std::fs::read_dir(run.path())
                    .with_context(|| format!("cannot read directory {}", run.path().display()))?;
                for entry in entries.flatten() {
                    if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        stack.push((entry.path(), depth + 1));
                    }
                }
            }
        }
        runs.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(runs)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> PathBuf {
        self.path.join("config.toml")
    }

    pub fn metrics(&self) -> PathBuf {
        self.path.join("metrics.csv")
    }

    pub fn summary(&self) -> PathBuf {
        self.path.join("summary.json")
    }

    pub fn log(&self) -> PathBuf {
        self.path.join("train.log")
    }

    pub fn plots(&self) -> PathBuf {
        self.path.join("plots")
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    pub fn checkpoint(&self, which: Saved) -> PathBuf {
        self.path.join(which.relative_path())
    }

    /// The `hetsyn eval` CSV written next to a checkpoint by default.
    pub fn eval_csv_of(checkpoint: &Path) -> PathBuf {
        checkpoint.with_extension("eval.csv")
    }

    /// Whether `path` holds a finished run (`summary.json` and `config.toml`).
    pub fn is_finished(&self) -> bool {
        self.summary().is_file() && self.config().is_file()
    }

    /// Whether `path` looks like a run directory (it has `checkpoints/`).
    pub fn has_checkpoints(&self) -> bool {
        self.checkpoints().is_dir()
    }

    /// The checkpoint the run's plots show: the model selected on validation,
    /// or the last one when there is none (no validation set, or stopped
    /// before its first evaluation).
    pub fn selected_checkpoint(&self) -> Result<PathBuf> {
        let (best, last) = (self.checkpoint(Saved::Best), self.checkpoint(Saved::Last));
        match (best.is_file(), last.is_file()) {
            (true, _) => Ok(best),
            (false, true) => Ok(last),
            (false, false) => {
                bail!("no checkpoint in {}: neither {} nor {}", self.path.display(), best.display(), last.display())
            }
        }
    }

    /// The checkpoint whose evaluation the run reports ([`Saved::REPORTED`]).
    pub fn reported_checkpoint(&self) -> Result<PathBuf> {
        Saved::REPORTED
            .iter()
            .map(|s| self.checkpoint(*s))
            .find(|p| p.is_file())
            .with_context(|| format!("no checkpoint in {}", self.checkpoints().display()))
    }

    /// The `hetsyn eval` CSV of the reported checkpoint, when there is one.
    pub fn reported_eval_csv(&self) -> Option<PathBuf> {
        let checkpoint = self.reported_checkpoint().unwrap_or_else(|_| self.checkpoint(Saved::Best));
        Some(Self::eval_csv_of(&checkpoint)).filter(|p| p.is_file())
    }

    /// What `--resume` continues: the run's config and its resumable checkpoint
    /// (`None` for a run stopped before its first one, which starts again from
    /// its config.toml). A checkpoint whose config differs from the run's
    /// (e.g. copied in from another run) is refused. `threads` overrides the
    /// config's (it does not change results).
    pub fn resume(&self, threads: Option<usize>) -> Result<(Config, Option<Checkpoint>)> {
        let (last, saved) = (self.checkpoint(Saved::Last), self.config());
        let at = || format!("--resume {}", self.path.display());
        if !last.exists() {
            if !saved.exists() {
                bail!("{}: no run there (neither {} nor {})", at(), last.display(), saved.display());
            }
            let overrides: Vec<String> = threads.map(|t| format!("threads={t}")).into_iter().collect();
            return Ok((Config::load(&saved, &overrides)?, None));
        }
        let ckpt = checkpoint::load(&last)?;
        let differences = Config::load(&saved, &[])?.differences(&ckpt.config)?;
        if !differences.is_empty() {
            bail!(
                "{}: {} was not written by this run: its config differs from {} in {}",
                at(),
                last.display(),
                saved.display(),
                differences.join("; ")
            );
        }
        let mut config = ckpt.config.clone();
        if let Some(threads) = threads {
            config.threads = threads;
        }
        Ok((config, Some(ckpt)))
    }

    /// Opens the run for training by this process: creates it and its
    /// `checkpoints/`, takes its lock (unless `lock` is given, taken already by
    /// [`RunDir::claim`]), appends the log to `train.log` under a banner line,
    /// and for a fresh run (not `resuming`) refuses a directory that holds a
    /// run and writes the resolved `config.toml`.
    pub fn open(self, config: &Config, lock: Option<RunLock>, resuming: bool) -> Result<OpenRun> {
        let checkpoints = self.checkpoints();
        std::fs::create_dir_all(&checkpoints)
            .with_context(|| format!("cannot create run directory {}", checkpoints.display()))?;
        let lock = match lock {
            Some(lock) => lock,
            None => self.lock()?,
        };
        crate::logging::tee_to(&self.log())?;
        crate::logging::line(&format!(
            "=== {} {} at {} UTC on {}, hetsyn {} (commit {}): {}",
            if resuming { "resumed" } else { "started" },
            self.path.display(),
            crate::io::atomic::utc_timestamp(),
            crate::provenance::host(),
            crate::provenance::VERSION,
            crate::provenance::GIT_COMMIT,
            crate::provenance::command_line()
        ));
        if !resuming {
            let last = self.checkpoint(Saved::Last);
            if last.exists() {
                bail!(
                    "run directory {} already holds a run ({}); continue it with --resume {} or choose another --out",
                    self.path.display(),
                    last.display(),
                    self.path.display()
                );
            }
            write_atomic(&self.config(), config.to_toml()?.as_bytes())?;
        }
        Ok(OpenRun { dir: self, _lock: lock })
    }

    /// Takes the run's lock for this process ([`RunLock`]).
    pub fn lock(&self) -> Result<RunLock> {
        RunLock::acquire(&self.path.join(".lock"), &self.path)
    }

    /// Decides, under the run's lock, what a run of `wanted` does with this
    /// directory (`hetsyn train --out RUN --if-exists`): a directory without a
    /// run (no `config.toml`) is trained into; a run of the same config
    /// (`threads` aside) is skipped when finished and resumed when not (with
    /// `skip`, refused when not; with `refuse`, refused either way); a run of
    /// another config is refused naming the differences, or with `rerun` moved
    /// aside to `<run>.old-<UTC time>` and trained afresh. A directory another
    /// process holds is refused. The returned claim holds the lock.
    pub fn claim(&self, wanted: &Config, if_exists: IfExists) -> Result<Claim> {
        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("cannot create run directory {}", self.path.display()))?;
        let lock = self.lock()?;
        let at = self.path.display();
        if !self.config().is_file() {
            return Ok(Claim::Train { lock, resume: None, moved_aside: None });
        }
        let saved = Config::load(&self.config(), &[]).with_context(|| format!("run directory {at}"))?;
        let differences = saved.differences(wanted)?;
        if !differences.is_empty() {
            if if_exists != IfExists::Rerun {
                bail!(
                    "run directory {at} holds a run of another config: {} differs (the run's value first) in {}; choose another --out, remove the run, or pass --if-exists rerun to move it aside and train again",
                    self.config().display(),
                    differences.join("; ")
                );
            }
            let (aside, lock) = self.move_aside(lock)?;
            tracing::warn!(old = %aside.display(), "the run's config.toml differs from the config in {}: moved the old run aside", differences.join("; "));
            return Ok(Claim::Train { lock, resume: None, moved_aside: Some(aside) });
        }
        match if_exists {
            IfExists::Refuse => bail!(
                "run directory {at} holds a run already{}; choose another --out, or pass --if-exists skip, resume or rerun",
                if self.is_finished() { " (finished)" } else { "" }
            ),
            _ if self.is_finished() => Ok(Claim::Finished),
            IfExists::Skip => {
                bail!("run directory {at} holds an unfinished run of this config; --if-exists resume continues it")
            }
            IfExists::Resume | IfExists::Rerun => {
                let (_, resume) = self.resume(Some(wanted.threads))?;
                Ok(Claim::Train { lock, resume: resume.map(Box::new), moved_aside: None })
            }
        }
    }

    /// Renames the run, whose lock `held` is, to a free `<run>.old-<UTC time>`
    /// and takes the lock of a fresh directory at its place; the old lock is
    /// released only then.
    fn move_aside(&self, mut held: RunLock) -> Result<(PathBuf, RunLock)> {
        let base = format!("{}.old-{}", self.path.display(), crate::io::atomic::utc_timestamp());
        let aside = (0..1000)
            .map(|k| PathBuf::from(if k == 0 { base.clone() } else { format!("{base}-{k}") }))
            .find(|p| !p.exists())
            .with_context(|| format!("cannot find a free name next to {base}"))?;
        std::fs::rename(&self.path, &aside)
            .with_context(|| format!("cannot move run directory {} to {}", self.path.display(), aside.display()))?;
        held.path = aside.join(".lock");
        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("cannot create run directory {}", self.path.display()))?;
        let lock = self.lock()?;
        drop(held);
        Ok((aside, lock))
    }
}

/// What `hetsyn train --out RUN --if-exists` does with a directory that holds a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IfExists {
    /// Refuse any run there.
    Refuse,
    /// Skip a finished run of the same config; refuse others.
    Skip,
    /// Skip a finished run of the same config, resume an unfinished one; refuse a run of another config.
    Resume,
    /// As `resume`, but move a run of another config aside to <run>.old-<UTC time> and train again.
    Rerun,
}

/// The decision of [`RunDir::claim`].
pub enum Claim {
    /// A finished run of the same config: nothing to do.
    Finished,
    /// Train into the directory, whose lock this holds: afresh, or from a
    /// resumable checkpoint of the run (`resume`).
    Train {
        lock: RunLock,
        resume: Option<Box<Checkpoint>>,
        /// Where a run of another config was moved.
        moved_aside: Option<PathBuf>,
    },
}

/// An exclusive claim on a run directory: an OS advisory lock on `<run>/.lock`
/// (`flock`, which network file systems forward to their server), whose text
/// names the holder's pid and host for the error message of the next comer.
/// The OS releases the lock when the process ends however it ends, so a lock
/// is never stale and never needs clearing by hand. Dropping the claim removes
/// the file.
pub struct RunLock {
    path: PathBuf,
    file: Option<File>,
}

impl RunLock {
    fn acquire(path: &Path, run_dir: &Path) -> Result<RunLock> {
        use std::io::Write;
        for _ in 0..5 {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .with_context(|| format!("cannot open lock file {}", path.display()))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let owner = std::fs::read_to_string(path).unwrap_or_default();
                    let mut words = owner.split_whitespace();
                    let pid = words.next().unwrap_or("?");
                    let host = words.next().unwrap_or("?");
                    bail!(
                        "run directory {} is in use by process {pid} on host {host} (lock file {}); wait for it to finish or stop it: the lock is released when that process exits",
                        run_dir.display(),
                        path.display()
                    );
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    // e.g. a file system mounted without lock support
                    tracing::warn!(lock = %path.display(), "cannot lock the run directory ({e}); a second process writing it would not be noticed");
                    return Ok(RunLock { path: path.to_path_buf(), file: None });
                }
            }
            // the file may have been removed by its previous holder between our open and lock
            if !same_file(&file, path) {
                continue;
            }
            file.set_len(0)
                .and_then(|_| writeln!(file, "{} {}", std::process::id(), crate::provenance::host()))
                .with_context(|| format!("cannot write lock file {}", path.display()))?;
            return Ok(RunLock { path: path.to_path_buf(), file: Some(file) });
        }
        bail!("cannot lock run directory {}", run_dir.display())
    }
}

/// Whether the open `file` is the file at `path` now.
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if self.file.is_some() {
            // removed while still held, so no other process can lock the old file in between
            let _ = std::fs::remove_file(&self.path);
        }
        self.file = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_directories_started_together_differ() {
        let parent = tempfile::tempdir().unwrap();
        let dirs: Vec<RunDir> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| RunDir::reserve(parent.path(), "run").unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let unique: std::collections::BTreeSet<_> = dirs.iter().map(|d| d.path().to_path_buf()).collect();
        assert_eq!(unique.len(), 8, "{dirs:?}");
        assert!(dirs.iter().all(|d| d.path().is_dir()));
    }

    #[test]
    fn a_held_lock_is_refused_with_its_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::at(dir.path());
        let held = run.lock().unwrap();
        let text = std::fs::read_to_string(dir.path().join(".lock")).unwrap();
        assert_eq!(text.split_whitespace().next(), Some(std::process::id().to_string().as_str()));
        let e = format!("{:#}", run.lock().err().unwrap());
        assert!(e.contains("in use by process") && e.contains(&crate::provenance::host()), "{e}");
        drop(held);
        assert!(!dir.path().join(".lock").exists(), "lock file left behind");
        let _again = run.lock().unwrap();
    }

    #[test]
    fn a_lock_file_without_a_holder_is_no_lock() {
        // a process killed with -9 leaves its file; the OS lock went with it
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".lock"), "1 some-other-node\n").unwrap();
        let _lock = RunDir::at(dir.path()).lock().unwrap();
    }

    fn dms(lr: &str) -> Config {
        Config::from_toml(include_str!("../../configs/dms.toml"), &[format!("train.lr={lr}")]).unwrap()
    }

    fn error(claim: Result<Claim>) -> String {
        match claim {
            Ok(_) => panic!("the claim was granted"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn a_claim_skips_resumes_refuses_or_moves_aside() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::at(dir.path().join("run"));
        let (a, b) = (dms("5e-3"), dms("1e-3"));
        // no run there: trained into, whatever the policy
        assert!(matches!(run.claim(&a, IfExists::Refuse).unwrap(), Claim::Train { resume: None, .. }));
        std::fs::write(run.config(), a.to_toml().unwrap()).unwrap();
        // an unfinished run of the same config (killed before its first checkpoint)
        assert!(error(run.claim(&a, IfExists::Refuse)).contains("holds a run already"));
        assert!(error(run.claim(&a, IfExists::Skip)).contains("unfinished"));
        for policy in [IfExists::Resume, IfExists::Rerun] {
            assert!(matches!(run.claim(&a, policy).unwrap(), Claim::Train { resume: None, moved_aside: None, .. }));
        }
        // threads do not change results
        let mut more_threads = a.clone();
        more_threads.threads = 7;
        std::fs::write(run.summary(), "{}").unwrap();
        for policy in [IfExists::Skip, IfExists::Resume, IfExists::Rerun] {
            assert!(matches!(run.claim(&more_threads, policy).unwrap(), Claim::Finished));
        }
        assert!(error(run.claim(&a, IfExists::Refuse)).contains("(finished)"));
        // another config: refused, naming the key and both values
        for policy in [IfExists::Refuse, IfExists::Skip, IfExists::Resume] {
            let e = error(run.claim(&b, policy));
            assert!(e.contains("train.lr: 0.005 vs 0.001") && e.contains("--if-exists rerun"), "{e}");
        }
        // ... and never moved while another process holds the run
        let held = run.lock().unwrap();
        let e = error(run.claim(&b, IfExists::Rerun));
        assert!(e.contains("in use by process"), "{e}");
        assert!(run.summary().is_file(), "a run in use was touched");
        drop(held);
        let Claim::Train { lock, resume: None, moved_aside: Some(aside) } = run.claim(&b, IfExists::Rerun).unwrap()
        else {
            panic!("not moved aside")
        };
        assert!(aside.join("summary.json").is_file() && !aside.join(".lock").exists());
        assert!(aside.file_name().unwrap().to_string_lossy().starts_with("run.old-"), "{aside:?}");
        assert!(!run.config().exists(), "the fresh directory holds the old run's files");
        // the claim holds the fresh directory's lock
        assert!(error(run.claim(&b, IfExists::Rerun)).contains("in use by process"));
        drop(lock);
        assert!(!run.path().join(".lock").exists());
    }

    #[test]
    fn reported_checkpoint_prefers_best_then_best_on_test_then_last() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::at(dir.path());
        assert!(run.reported_checkpoint().is_err());
        std::fs::create_dir_all(run.checkpoints()).unwrap();
        for saved in [Saved::Last, Saved::BestOnTest, Saved::Best] {
            std::fs::write(run.checkpoint(saved), b"").unwrap();
            assert_eq!(run.reported_checkpoint().unwrap(), run.checkpoint(saved));
        }
        std::fs::remove_file(run.checkpoint(Saved::Best)).unwrap();
        assert_eq!(run.selected_checkpoint().unwrap(), run.checkpoint(Saved::Last));
        assert_eq!(run.reported_eval_csv(), None);
        std::fs::write(dir.path().join("checkpoints/best_on_test.eval.csv"), b"").unwrap();
        assert_eq!(run.reported_eval_csv(), Some(dir.path().join("checkpoints/best_on_test.eval.csv")));
    }
}
