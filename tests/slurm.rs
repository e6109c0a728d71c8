//! `scripts/slurm_array.sh` on a real one-node Slurm cluster
//! (tests/slurm/cluster.sh: Debian's slurmctld, slurmd and munge, installed
//! when missing), with tiny DMS configs in a directory whose name has a space
//! and a `%`: an array to completion, a resubmission that skips everything, a
//! changed config refused and then rerun, a broken config refused at submission,
//! an earlier array running its own configs after the directory changed, a rerun
//! refused while the old job trains, and `scancel` then resubmission ending with
//! the metrics and checkpoints of an uninterrupted run. Where the cluster cannot
//! be had (not root, no apt-get, daemons failing), the test says so and passes.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use hetsyn::io::safetensors_file::read_file;

mod common;
use common::metrics_without_elapsed as metrics;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A running cluster, stopped (its daemons, by pid) when dropped.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the cluster, or says why it cannot and returns `None`.
    fn start() -> Option<Cluster> {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let out = Command::new("bash")
            .arg(repo().join("tests/slurm/cluster.sh"))
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let cluster = Cluster { dir };
        match out.status.code() {
            Some(0) => {
                println!("{}(cluster started in {:.1} s)", text, t0.elapsed().as_secs_f64());
                Some(cluster)
            }
            Some(77) => {
                println!("SKIPPED the real-Slurm test: {}", text.trim());
                None
            }
            _ => panic!("tests/slurm/cluster.sh start failed:\n{text}"),
        }
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    /// A Slurm client command.
    fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("SLURM_CONF", self.conf());
        cmd
    }

    /// `scripts/slurm_array.sh CONFIGS --out OUT --cpus 1 --mem 100M ARGS -- --no-plots`.
    fn array(&self, configs: &Path, out: &Path, args: &[&str]) -> Command {
        let mut cmd = self.client("bash");
        cmd.arg(repo().join("scripts/slurm_array.sh"))
            .arg(configs)
            .arg("--out")
            .arg(out)
            .args(["--cpus", "1", "--mem", "100M", "--time", "00:10:00"])
            .args(args)
            .args(["--", "--no-plots"])
            .env("HETSYN_BIN", cargo_bin("hetsyn"));
        cmd
    }

    /// Runs [`Cluster::array`] to its end and prints what it printed, under `case`.
    fn submit(&self, case: &str, configs: &Path, out: &Path, args: &[&str]) -> Output {
        let t0 = Instant::now();
        let output = self.array(configs, out, args).output().unwrap();
        report(case, &output, t0);
        output
    }

    /// Waits (up to 60 s) for `ready`.
    fn wait_for(&self, what: &str, ready: impl Fn() -> bool) {
        let t0 = Instant::now();
        while !ready() {
            if t0.elapsed() > Duration::from_secs(60) {
                let log = fs::read_to_string(self.dir.path().join("slurmctld.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                panic!(
                    "{what}: not after 60 s; slurmctld.log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let out =
            Command::new("bash").arg(repo().join("tests/slurm/cluster.sh")).arg("stop").arg(self.dir.path()).output();
        if let Ok(out) = out {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

fn report(case: &str, output: &Output, t0: Instant) {
    println!(
        "--- {case} (exit status {:?}, {:.1} s)\n{}{}",
        output.status.code(),
        t0.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&output.stdout),
        // the tasks' logs are in the array's files; here only what the submission said
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|l| l.starts_with("slurm_array.sh"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// The job id a submission printed.
fn job_of(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("submitted job array "))
        .and_then(|l| l.split(':').next())
        .unwrap_or_else(|| panic!("no job id in:\n{text}"))
        .to_string()
}

/// configs/dms.toml with 5 neurons, `iterations` and `seed`.
fn dms(seed: u64, iterations: u64, eval_every: u64) -> String {
    let text = fs::read_to_string(repo().join("configs/dms.toml")).unwrap();
    let replaced = text
        .replace("seed = 0", &format!("seed = {seed}"))
        .replace("size = 100", "size = 5")
        .replace("iterations = 1000", &format!("iterations = {iterations}"))
        .replace("eval_every = 25", &format!("eval_every = {eval_every}\ncheckpoint_every = 20"));
    assert_ne!(text, replaced);
    replaced
}

/// `<root>/<name>` holding the configs `files` (stem, text), and its `--out`, `<root>/<name>-runs`.
fn configs_in(root: &Path, name: &str, files: &[(&str, String)]) -> (PathBuf, PathBuf) {
    let dir = root.join(name);
    fs::create_dir_all(&dir).unwrap();
    for (stem, text) in files {
        fs::write(dir.join(format!("{stem}.toml")), text).unwrap();
    }
    (dir, root.join(format!("{name}-runs")))
}

/// The task states of an array's status file, by task: `task state config-stem`.
fn states(status: &Path) -> Vec<String> {
    let text = fs::read_to_string(status).unwrap_or_else(|e| panic!("{}: {e}", status.display()));
    let mut last: std::collections::BTreeMap<String, (String, String)> = Default::default();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let stem = Path::new(f[2]).file_stem().unwrap().to_string_lossy().to_string();
        let entry = last.entry(f[0].to_string()).or_insert(("queued".into(), stem));
        if f[1] != "queued" && !(f[1] == "running" && entry.0 != "queued") {
            entry.0 = f[1].to_string();
        }
    }
    last.into_iter().map(|(task, (state, stem))| format!("{task} {state} {stem}")).collect()
}

/// Starts a submission with --wait in the background; returns it and the job id
/// it printed first.
fn submit_in_background(
    cluster: &Cluster,
    configs: &Path,
    out: &Path,
    args: &[&str],
) -> (Child, String, BufReader<std::process::ChildStdout>) {
    let mut child = cluster.array(configs, out, args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let job = job_of(&first);
    (child, job, reader)
}

fn finish(
    case: &str,
    mut child: Child,
    mut reader: BufReader<std::process::ChildStdout>,
    t0: Instant,
) -> (bool, String) {
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    let status = child.wait().unwrap();
    println!("--- {case} (exit status {:?}, {:.1} s)\n{rest}", status.code(), t0.elapsed().as_secs_f64());
    (status.success(), rest)
}

#[test]
fn slurm_arrays_on_a_real_cluster() {
    let t_all = Instant::now();
    let Some(cluster) = Cluster::start() else { return };
    let root = tempfile::tempdir().unwrap();
    // a space and a % in both paths: quoted and escaped in #SBATCH lines
    let (configs, _) =
        configs_in(root.path(), "configs 100%", &[("a", dms(1, 40, 20)), ("b", dms(2, 40, 20)), ("c", dms(3, 40, 20))]);
    let out = root.path().join("runs 50%").join("x y");

    // 1. a 3-config array to completion
    let first = cluster.submit("1. three configs, --wait", &configs, &out, &["--max-parallel", "2", "--wait"]);
    let text = stdout(&first);
    assert!(first.status.success(), "{text}{}", String::from_utf8_lossy(&first.stderr));
    assert!(text.contains("3 done, 0 skipped, 0 failed (of 3)"), "{text}");
    let job = job_of(&text);
    assert_eq!(states(&out.join(format!("slurm-{job}.status"))), ["0 done a", "1 done b", "2 done c"]);
    for (task, name) in ["a", "b", "c"].iter().enumerate() {
        assert!(out.join(name).join("summary.json").is_file(), "{name} did not finish");
        let log = fs::read_to_string(out.join(format!("slurm-{job}_{task}.out"))).unwrap();
        assert!(log.contains(&format!("done {}", out.join(name).display())), "{log}");
    }

    // 2. the same directory again: every run is finished
    let again = cluster.submit("2. resubmitted", &configs, &out, &["--wait"]);
    assert!(
        again.status.success() && stdout(&again).contains("0 done, 3 skipped, 0 failed (of 3)"),
        "{}",
        stdout(&again)
    );

    // 3. a changed config is refused, naming the key; --rerun-changed trains it again
    let c = configs.join("c.toml");
    fs::write(&c, fs::read_to_string(&c).unwrap().replace("lr = 5e-3", "lr = 2e-3")).unwrap();
    let refused = cluster.submit("3a. c changed", &configs, &out, &["--wait"]);
    let text = stdout(&refused);
    assert!(!refused.status.success(), "{text}");
    assert!(text.contains("0 done, 2 skipped, 1 failed (of 3)") && text.contains("train.lr: 0.005 vs 0.002"), "{text}");
    let rerun = cluster.submit("3b. c changed, --rerun-changed", &configs, &out, &["--wait", "--rerun-changed"]);
    let text = stdout(&rerun);
    assert!(rerun.status.success() && text.contains("1 done, 2 skipped, 0 failed (of 3)"), "{text}");
    let aside: Vec<PathBuf> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("c.old-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(fs::read_to_string(aside[0].join("config.toml")).unwrap().contains("lr = 0.005"));
    assert!(fs::read_to_string(out.join("c/config.toml")).unwrap().contains("lr = 0.002"));

    // 4. a broken config is refused before anything is queued
    let jobs_before = stdout(&cluster.client("squeue").args(["-h", "-o", "%i", "-t", "all"]).output().unwrap());
    let statuses = |dir: &Path| {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".status"))
            .count()
    };
    let before = statuses(&out);
    fs::write(configs.join("d.toml"), dms(4, 40, 20).replace("batch_size = 32", "batch_size = 0")).unwrap();
    let broken = cluster.submit("4. broken d.toml", &configs, &out, &["--wait"]);
    let err = String::from_utf8_lossy(&broken.stderr);
    assert_eq!(broken.status.code(), Some(1), "{err}");
    assert!(err.contains("d.toml") && err.contains("batch_size") && err.contains("nothing submitted"), "{err}");
    let jobs_after = stdout(&cluster.client("squeue").args(["-h", "-o", "%i", "-t", "all"]).output().unwrap());
    assert_eq!(jobs_before, jobs_after, "a job was queued");
    assert_eq!(statuses(&out), before);
    fs::remove_file(configs.join("d.toml")).unwrap();

    // 5. an array queued for [b, c]; a.toml added and the directory submitted
    // again: the first array runs b and c, not a and b
    let (own, own_out) = configs_in(root.path(), "own", &[("b", dms(2, 40, 20)), ("c", dms(3, 40, 20))]);
    let t0 = Instant::now();
    let (held, held_job, held_out) = submit_in_background(&cluster, &own, &own_out, &["--wait", "--sbatch-arg=--hold"]);
    println!("--- 5a. [b, c] submitted held: job {held_job}");
    fs::write(own.join("a.toml"), dms(1, 40, 20)).unwrap();
    let second = cluster.submit("5b. [a, b, c] submitted while 5a is queued", &own, &own_out, &["--wait"]);
    assert!(stdout(&second).contains("3 done, 0 skipped, 0 failed (of 3)"), "{}", stdout(&second));
    let release = cluster.client("scontrol").args(["release", &held_job]).output().unwrap();
    assert!(release.status.success(), "{}", String::from_utf8_lossy(&release.stderr));
    let (ok, text) = finish("5c. the held array, released", held, held_out, t0);
    assert!(ok && text.contains("0 done, 2 skipped, 0 failed (of 2)"), "{text}");
    assert_eq!(states(&own_out.join(format!("slurm-{held_job}.status"))), ["0 skipped b", "1 skipped c"]);
    for (task, name) in ["b", "c"].iter().enumerate() {
        let log = fs::read_to_string(own_out.join(format!("slurm-{held_job}_{task}.out"))).unwrap();
        assert!(log.contains(&format!("skipped {}", own_out.join(name).display())), "task {task}: {log}");
    }

    // 6. a rerun requested while the old job trains is refused: one writer only.
    // The old job is far too long to finish on its own (no race with the
    // machine's speed); it is cancelled once the rerun has been refused.
    let (long, long_out) = configs_in(root.path(), "long", &[("x", dms(5, 1_000_000, 100))]);
    let x = long.join("x.toml");
    let t0 = Instant::now();
    let (old, old_job, old_out) = submit_in_background(&cluster, &long, &long_out, &["--wait"]);
    let run = long_out.join("x");
    cluster.wait_for("x training", || run.join(".lock").is_file() && run.join("config.toml").is_file());
    println!("--- 6a. x (10^6 iterations) training in job {old_job}");
    fs::write(&x, fs::read_to_string(&x).unwrap().replace("lr = 5e-3", "lr = 2e-3")).unwrap();
    let refused = cluster.submit(
        "6b. x changed, --rerun-changed while 6a trains",
        &long,
        &long_out,
        &["--wait", "--rerun-changed"],
    );
    let text = stdout(&refused);
    assert!(!refused.status.success() && text.contains("0 done, 0 skipped, 1 failed (of 1)"), "{text}");
    assert!(text.contains("in use by process"), "{text}");
    let cancel = cluster.client("scancel").arg(&old_job).output().unwrap();
    assert!(cancel.status.success(), "{}", String::from_utf8_lossy(&cancel.stderr));
    let (ok, text) = finish("6c. the old job, cancelled after the refusal", old, old_out, t0);
    assert!(!ok && text.contains("0 done, 0 skipped, 1 failed (of 1)"), "{text}");
    let names: Vec<String> =
        fs::read_dir(&long_out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert!(!names.iter().any(|n| n.starts_with("x.old-")), "moved aside while training: {names:?}");
    assert!(fs::read_to_string(run.join("config.toml")).unwrap().contains("lr = 0.005"));
    let rows = metrics(&run);
    assert!(rows.len() >= 2, "the old job wrote its metrics: {rows:?}");
    assert!(rows.iter().all(|r| r.split(',').count() == rows[0].split(',').count()), "{rows:?}");

    // 7. scancel mid-run, resubmit: the same metrics and checkpoints as without
    let (cut, cut_out) = configs_in(root.path(), "cut", &[("y", dms(6, 4000, 100))]);
    let y = cut.join("y.toml");
    let t0 = Instant::now();
    let (job, job_id, job_out) = submit_in_background(&cluster, &cut, &cut_out, &["--wait"]);
    let run = cut_out.join("y");
    cluster.wait_for("y's first checkpoint", || run.join("checkpoints/last.safetensors").is_file());
    let cancel = cluster.client("scancel").arg(&job_id).output().unwrap();
    assert!(cancel.status.success(), "{}", String::from_utf8_lossy(&cancel.stderr));
    println!("--- 7a. y (4000 iterations) cancelled in job {job_id} after its first checkpoint");
    let (ok, text) = finish("7b. the cancelled array", job, job_out, t0);
    assert!(!ok && text.contains("0 done, 0 skipped, 1 failed (of 1)"), "{text}");
    assert!(!run.join("summary.json").exists(), "the run finished before scancel; make it longer");
    let log = fs::read_to_string(cut_out.join(format!("slurm-{job_id}_0.out"))).unwrap();
    println!("its log ends: {}", log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(""));
    let resumed = cluster.submit("7c. resubmitted", &cut, &cut_out, &["--wait"]);
    let text = stdout(&resumed);
    assert!(resumed.status.success() && text.contains("1 done, 0 skipped, 0 failed (of 1)"), "{text}");
    let job = job_of(&text);
    let status = fs::read_to_string(cut_out.join(format!("slurm-{job}.status"))).unwrap();
    assert!(status.lines().any(|l| l.starts_with("0\tdone\t") && l.ends_with("\tresumed")), "{status}");
    let straight = root.path().join("straight");
    let t0 = Instant::now();
    let reference = Command::new(cargo_bin("hetsyn"))
        .args(["-q", "train", "--no-plots", "--threads", "1", "--config"])
        .arg(&y)
        .arg("--out")
        .arg(&straight)
        .output()
        .unwrap();
    assert!(reference.status.success(), "{}", String::from_utf8_lossy(&reference.stderr));
    println!("--- 7d. y uninterrupted, outside Slurm ({:.1} s)", t0.elapsed().as_secs_f64());
    assert_eq!(metrics(&run), metrics(&straight), "metrics.csv differs from an uninterrupted run");
    for name in ["last", "best"] {
        let file = format!("checkpoints/{name}.safetensors");
        assert!(
            read_file(&run.join(&file)).unwrap().0 == read_file(&straight.join(&file)).unwrap().0,
            "{file} differs"
        );
    }
    println!("--- 7e. metrics.csv (but elapsed_s) and the tensors of last and best.safetensors equal the uninterrupted run's");
    println!("(all cases: {:.1} s with the cluster's start)", t_all.elapsed().as_secs_f64());
}
