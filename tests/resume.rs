//! A run killed at random points (SIGKILL, several times) and resumed with
//! `--resume` ends with the same metrics rows (but for elapsed time) and the same
//! parameters and optimizer moments, bit for bit, as an uninterrupted run; SIGTERM
//! stops a run with a resumable checkpoint; a second writer is refused.

use std::fs;
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use assert_cmd::cargo::cargo_bin;
use hetsyn::io::safetensors_file::read_file;

mod common;
use common::metrics_without_elapsed as metrics;

const CONFIG: &str = r#"
name = "resume"
seed = 11
[model]
kind = "hetsynlif"
dt = 0.005
surrogate = "triangle"
tau_reset = 0.04
dropout = 0.1
tau_init = { dist = "normal", mean = 0.04, std = 0.004 }
layers = [{ size = 40, recurrent = true }]
[model.readout]
loss = "last"
[task]
kind = "dms"
delay = 0.3
validation_trials = 16
test_trials = 16
[train]
iterations = 240
batch_size = 8
lr = 5e-3
decay_lr = 5e-3
eval_every = 20
checkpoint_every = 3
rate_reg = 0.1
"#;

fn hetsyn(args: &[&str], dir: &Path) -> Process {
    let mut cmd = Process::new(cargo_bin("hetsyn"));
    cmd.args(["-q"]).args(args).current_dir(dir).stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

fn tensors(path: &Path) -> Vec<hetsyn::io::safetensors_file::NamedTensor> {
    read_file(path).unwrap().0
}

#[test]
fn killed_and_resumed_run_equals_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("c.toml"), CONFIG).unwrap();
    let status =
        hetsyn(&["train", "--no-progress", "--config", "c.toml", "--out", "reference"], dir.path()).status().unwrap();
    assert!(status.success());

    let run = dir.path().join("killed");
    let last = run.join("checkpoints/last.safetensors");
    let step_of = |path: &Path| -> u64 {
        read_file(path).ok().and_then(|(_, m)| m.get("step").and_then(|s| s.parse().ok())).unwrap_or(0)
    };
    // each attempt waits until the run has written a newer checkpoint, then
    // kills it (SIGKILL) after a seeded random delay of 0-40 ms
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut kills = 0;
    let mut killed_at = Vec::new();
    while kills < 4 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = (state >> 33) % 40;
        let before = step_of(&last);
        let mut cmd = if run.join("config.toml").exists() {
            hetsyn(&["train", "--no-progress", "--resume", "killed"], dir.path())
        } else {
            hetsyn(&["train", "--no-progress", "--config", "c.toml", "--out", "killed"], dir.path())
        };
        let mut child = cmd.spawn().unwrap();
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "a run failed");
                break true;
            }
            if step_of(&last) > before {
                break false;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if finished {
            break;
        }
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        killed_at.push(step_of(&last));
    }
    eprintln!("killed {kills} times, after checkpoints of steps {killed_at:?}");
    assert!(kills >= 2, "the run finished before it could be killed twice; make it longer");
    let status = hetsyn(&["train", "--no-progress", "--resume", "killed"], dir.path()).status().unwrap();
    assert!(status.success(), "final resume failed");

    let reference = dir.path().join("reference");
    let (want, got) = (metrics(&reference), metrics(&run));
    if want != got {
        let keep = std::env::temp_dir().join("hetsyn-resume-failure");
        let _ = fs::remove_dir_all(&keep);
        let _ = fs::rename(dir.path(), &keep);
        panic!(
            "metrics differ after {kills} kills (kept in {}):\n{}\n---\n{}",
            keep.display(),
            want.join("\n"),
            got.join("\n")
        );
    }
    for name in ["last", "best"] {
        let file = format!("checkpoints/{name}.safetensors");
        assert!(
            tensors(&reference.join(&file)) == tensors(&run.join(&file)),
            "{name} checkpoint tensors differ after {kills} kills"
        );
    }
    assert!(!run.join(".lock").exists(), "lock left behind");
    // train.log is appended to by every process of the run, not replaced
    let log = fs::read_to_string(run.join("train.log")).unwrap();
    assert!(log.starts_with("=== started"), "{log}");
    assert!(log.lines().any(|l| l.starts_with("=== resumed")), "{log}");
}

#[test]
fn sigterm_stops_with_a_resumable_checkpoint_and_a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("c.toml"), CONFIG.replace("iterations = 240", "iterations = 100000")).unwrap();
    let mut child =
        hetsyn(&["train", "--no-progress", "--config", "c.toml", "--out", "run"], dir.path()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    // a second writer of the same directory is refused while the first runs
    let out =
        Process::new(cargo_bin("hetsyn")).args(["train", "--resume", "run"]).current_dir(dir.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use by process"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "SIGTERM exits with 128 + 15");
    let (_, metadata) = read_file(&dir.path().join("run/checkpoints/last.safetensors")).unwrap();
    assert!(metadata.contains_key("trainer_state"));
    assert!(!dir.path().join("run/.lock").exists(), "lock left behind");
    // and a plain train into the same directory is refused
    let out = Process::new(cargo_bin("hetsyn"))
        .args(["train", "--config", "c.toml", "--out", "run"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
    // SIGINT (Ctrl-C) stops a resumed run the same way, with status 130
    let mut child = hetsyn(&["train", "--no-progress", "--resume", "run"], dir.path()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(130), "SIGINT exits with 128 + 2");
    // a lock held elsewhere (here: by this test, as another node would) is named, never taken over
    let lock_path = dir.path().join("run/.lock");
    let mut held = fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&lock_path).unwrap();
    held.try_lock().unwrap();
    std::io::Write::write_all(&mut held, b"1 some-other-node\n").unwrap();
    let out =
        Process::new(cargo_bin("hetsyn")).args(["train", "--resume", "run"]).current_dir(dir.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("some-other-node") && err.contains("in use by process"), "{err}");
    assert!(lock_path.exists());
}
