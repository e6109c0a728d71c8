//! The authors' protocol: `validation = "none"` (SHD fixtures) and
//! `validation_size = 0` (IDX images) train on every training sample with no
//! validation set. Nothing is selected on validation (no best.safetensors,
//! `selected_on = "last"`), the selected figures of summary.json are the last
//! metrics row's and the best-on-test ones the best over the rows, the
//! best-on-test checkpoint is written only when asked and says so, and `eval`,
//! `plot`, `verify`, `summarize` and `--resume` work on such runs.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use assert_cmd::cargo::cargo_bin;
use common::{hetsyn, separable_config};
use hetsyn::checkpoint;
use serde_json::Value;

/// Trains `config` with `sets` into `<dir>/<name>`; returns the run directory and stdout.
fn train(dir: &Path, config: &Path, name: &str, sets: &[&str]) -> (PathBuf, String) {
    let run = dir.join(name);
    let mut cmd = hetsyn();
    cmd.args(["train", "--no-progress", "--no-plots", "--config"]).arg(config).arg("--out").arg(&run);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (run, String::from_utf8_lossy(&out.stdout).to_string())
}

fn summary(run: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

/// metrics.csv as (header, rows).
fn metrics(run: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader.records().map(|r| r.unwrap().iter().map(String::from).collect()).collect();
    (header, rows)
}

/// Checks what a run without a validation set writes: empty validation columns,
/// no best checkpoint, summary.json's selected figures = the last row's, its
/// best-on-test figures = the best row's (the first of equals); returns the rows.
fn check_no_validation_run(run: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let (header, rows) = metrics(run);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let cell = |row: &Vec<String>, name: &str| row[col(name)].clone();
    let number = |row: &Vec<String>, name: &str| cell(row, name).parse::<f64>().unwrap();
    assert!(rows.len() >= 2);
    for row in &rows {
        assert_eq!((cell(row, "validation_loss"), cell(row, "validation_accuracy")), (String::new(), String::new()));
        assert!(number(row, "test_accuracy").is_finite());
    }
    assert!(!run.join("checkpoints/best.safetensors").exists(), "nothing is selected on validation");
    assert!(run.join("checkpoints/last.safetensors").is_file());

    let s = summary(run);
    let last = rows.last().unwrap();
    assert_eq!(s["selected_on"], "last");
    assert_eq!(s["validation_samples"], 0);
    assert_eq!(s["selected_checkpoint"], "checkpoints/last.safetensors");
    assert!(s["selection"].as_str().unwrap().starts_with("no validation set"), "{}", s["selection"]);
    assert_eq!(s["best_validation_accuracy"], Value::Null);
    assert_eq!(s["best_validation_loss"], Value::Null);
    assert_eq!(s["last_validation_accuracy"], Value::Null);
    // the selected figures are the last row's
    assert_eq!(s["best_validation_step"].as_u64(), Some(number(last, "step") as u64));
    assert_eq!(s["best_validation_epoch"].as_f64(), Some(number(last, "epoch")));
    assert_eq!(s["test_accuracy_at_best_validation"].as_f64(), Some(number(last, "test_accuracy")));
    assert_eq!(s["test_loss_at_best_validation"].as_f64(), Some(number(last, "test_loss")));
    assert_eq!(s["last_test_accuracy"], s["test_accuracy_at_best_validation"]);
    assert_eq!(s["tau_at_best_validation"], s["tau_last"]);
    // best on test: the maximum over the rows, labelled as selected on the test set
    let accuracies: Vec<f64> = rows.iter().map(|r| number(r, "test_accuracy")).collect();
    let best = accuracies.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let first_best = rows.iter().find(|r| number(r, "test_accuracy") == best).unwrap();
    assert_eq!(s["best_test_accuracy"].as_f64(), Some(best));
    assert_eq!(s["best_test_epoch"].as_f64(), Some(number(first_best, "epoch")));
    assert_eq!(s["best_test_step"].as_u64(), Some(number(first_best, "step") as u64));
    assert_eq!(s["best_test_selected_on"], "test_accuracy");
    (header, rows)
}

#[test]
fn shd_without_validation_trains_on_everything_and_selects_the_last_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let config = separable_config(dir.path());
    let (run, stdout) = train(dir.path(), &config, "none", &["task.validation=\"none\"", "train.epochs=5"]);
    let (header, rows) = check_no_validation_run(&run);
    // all 40 training samples in batches of 8 (the speaker split of the same config trains on 32: 4 steps)
    assert_eq!(rows[0][header.iter().position(|h| h == "step").unwrap()], "5");
    assert_eq!(rows.len(), 5);
    assert!(!run.join("checkpoints/best_on_test.safetensors").exists(), "written only when asked");
    assert_eq!(summary(&run)["best_on_test_checkpoint"], Value::Null);
    assert!(stdout.contains("no validation set: selected the last epoch (epoch 5, step 25)"), "{stdout}");
    assert!(stdout.contains("best on test (selected on the test set)"), "{stdout}");

    // eval of the last checkpoint: the logged test accuracy again
    let last = run.join("checkpoints/last.safetensors");
    hetsyn().args(["-q", "eval", "--delete-prob", "0.5", "--checkpoint"]).arg(&last).assert().success();
    let csv = fs::read_to_string(run.join("checkpoints/last.eval.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let eval_header = reader.headers().unwrap().clone();
    let clean = reader.records().next().unwrap().unwrap();
    let at = |k: &str| clean[eval_header.iter().position(|h| h == k).unwrap()].to_string();
    assert_eq!(at("condition"), "clean");
    assert_eq!(at("test_accuracy"), at("logged_test_accuracy"));
    assert_eq!(at("test_accuracy").parse::<f64>().unwrap(), summary(&run)["last_test_accuracy"].as_f64().unwrap());

    // plot falls back to the last checkpoint, and says so
    let out = hetsyn().arg("plot").arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plotted from") && stderr.contains("last.safetensors"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 6);
    for stem in ["learning_curves", "decay_hist", "raster"] {
        assert!(run.join(format!("plots/{stem}.png")).is_file(), "{stem}");
    }

    // verify: the empty validation cells agree with the checkpoint's null metrics
    let out = hetsyn().arg("verify").arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    // summarize reads the last checkpoint's eval CSV and says the run has no validation set
    let out = hetsyn().args(["-q", "summarize"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("1 of 1 runs have no validation set (selected_on = last)"), "{md}");
    assert!(md.contains("eval.* figures from checkpoints/last.eval.csv (1 runs)"), "{md}");
    let table = fs::read_to_string(dir.path().join("summary.csv")).unwrap();
    assert!(table.contains("eval.delete_prob=0.5.test_accuracy"), "{table}");
}

#[test]
fn best_on_test_checkpoint_is_written_when_asked_and_names_its_selection() {
    let dir = tempfile::tempdir().unwrap();
    let config = separable_config(dir.path());
    let sets = ["task.validation=\"none\"", "output.save_best_on_test=true"];
    let (run, _) = train(dir.path(), &config, "none", &sets);
    check_no_validation_run(&run);
    let s = summary(&run);
    assert_eq!(s["best_on_test_checkpoint"], "checkpoints/best_on_test.safetensors");
    let path = run.join("checkpoints/best_on_test.safetensors");
    let ckpt = checkpoint::load(&path).unwrap();
    assert_eq!(ckpt.selected_on.as_deref(), Some("test_accuracy"));
    assert_eq!(Some(ckpt.step), s["best_test_step"].as_u64());
    assert_eq!(ckpt.metrics["test_accuracy"], s["best_test_accuracy"]);
    assert!(ckpt.optimizer.is_none() && ckpt.trainer_state.is_none(), "a model, not a resumable checkpoint");
    assert_eq!(checkpoint::load(&run.join("checkpoints/last.safetensors")).unwrap().selected_on, None);
    hetsyn().args(["-q", "eval", "--checkpoint"]).arg(&path).assert().success();
    // verify finds the metrics row of its step
    let out = hetsyn().arg("verify").arg(&run).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.lines().any(|l| l.starts_with("ok") && l.contains("best_on_test.safetensors")), "{text}");

    // with a validation set: best.safetensors says it was selected on validation, and
    // best_on_test.safetensors is still written when asked
    let (held, _) = train(dir.path(), &config, "held", &["output.save_best_on_test=true", "train.epochs=3"]);
    let s = summary(&held);
    let speakers = hetsyn::data::read_spike_file(&common::fixture("sep_train.h5")).unwrap().speakers.unwrap();
    let held_out = speakers.iter().filter(|s| **s == 3).count() as u64;
    assert_eq!(
        (s["selected_on"].as_str(), s["validation_samples"].as_u64()),
        (Some("validation_accuracy"), Some(held_out))
    );
    assert_eq!(s["selected_checkpoint"], "checkpoints/best.safetensors");
    let best = checkpoint::load(&held.join("checkpoints/best.safetensors")).unwrap();
    assert_eq!(best.selected_on.as_deref(), Some("validation_accuracy"));
    let on_test = checkpoint::load(&held.join("checkpoints/best_on_test.safetensors")).unwrap();
    assert_eq!(
        (on_test.selected_on.as_deref(), Some(on_test.step)),
        (Some("test_accuracy"), s["best_test_step"].as_u64())
    );

    // the key is checked like any other
    let out = hetsyn()
        .args(["train", "--set", "output.save_best_on_test=2", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(dir.path().join("bad"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("output.save_best_on_test") && err.contains("expected true or false"), "{err}");
    assert!(!dir.path().join("bad").exists());
}

#[test]
fn a_killed_run_without_validation_resumes_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let config = separable_config(dir.path());
    let sets = ["task.validation=\"none\"", "output.save_best_on_test=true", "train.epochs=60"];
    let (reference, _) = train(dir.path(), &config, "reference", &sets);

    let run = dir.path().join("killed");
    let mut cmd = Command::new(cargo_bin("hetsyn"));
    cmd.args(["-q", "train", "--no-progress", "--no-plots", "--config"]).arg(&config).arg("--out").arg(&run);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let last = run.join("checkpoints/last.safetensors");
    while !last.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first checkpoint");
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(20));
    child.kill().unwrap();
    child.wait().unwrap();
    let (_, rows) = metrics(&run);
    assert!(rows.len() < 60, "the run finished before it was killed; make it longer");
    hetsyn().args(["-q", "train", "--no-progress", "--no-plots", "--resume"]).arg(&run).assert().success();

    let without = |mut s: Value| {
        // the resumed process has its own command line
        for key in ["elapsed_s", "run_dir", "command_line"] {
            s[key] = Value::Null;
        }
        s
    };
    assert_eq!(without(summary(&run)), without(summary(&reference)));
    let strip = |run: &Path| -> Vec<Vec<String>> {
        let (header, rows) = metrics(run);
        let elapsed = header.iter().position(|h| h == "elapsed_s").unwrap();
        rows.into_iter()
            .map(|mut r| {
                r.remove(elapsed);
                r
            })
            .collect()
    };
    assert_eq!(strip(&run), strip(&reference));
    check_no_validation_run(&run);
    for name in ["last", "best_on_test"] {
        let file = format!("checkpoints/{name}.safetensors");
        let (a, b) = (checkpoint::load(&run.join(&file)).unwrap(), checkpoint::load(&reference.join(&file)).unwrap());
        assert!(a.network == b.network && a.step == b.step, "{name} differs after the resume");
    }
}

/// Writes a small MNIST-format set into `dir`: `n` training and `m` test images
/// of 4 × 5 pixels, two classes (bright left or right half, with noise).
fn write_idx_set(dir: &Path, n: usize, m: usize) {
    let write = |name: &str, dims: &[u32], data: Vec<u8>| {
        let mut out = vec![0, 0, 0x08, dims.len() as u8];
        for d in dims {
            out.extend(d.to_be_bytes());
        }
        out.extend(data);
        fs::write(dir.join(name), out).unwrap();
    };
    let image = |k: usize| -> Vec<u8> {
        (0..20)
            .map(|p| {
                let bright = (p % 5 < 2) == k.is_multiple_of(2);
                let noise = ((k * 31 + p * 17) % 40) as u8;
                if bright {
                    200 + noise
                } else {
                    noise
                }
            })
            .collect()
    };
    let labels = |count: usize| (0..count).map(|k| (k % 2) as u8).collect::<Vec<u8>>();
    write("train-images-idx3-ubyte", &[n as u32, 4, 5], (0..n).flat_map(image).collect());
    write("train-labels-idx1-ubyte", &[n as u32], labels(n));
    write("t10k-images-idx3-ubyte", &[m as u32, 4, 5], (1000..1000 + m).flat_map(image).collect());
    write("t10k-labels-idx1-ubyte", &[m as u32], labels(m));
}

#[test]
fn images_without_validation_train_on_every_image() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_set(dir.path(), 36, 12);
    let config = dir.path().join("images.toml");
    fs::write(
        &config,
        format!(
            r#"
name = "images"
[model]
kind = "hetsynlif"
tau_init = {{ dist = "uniform", low = 0.005, high = 0.02 }}
layers = [{{ size = 12, recurrent = true }}]
[model.readout]
loss = "spike_count"
[task]
kind = "images"
data_dir = {:?}
validation_size = 0
[train]
epochs = 4
batch_size = 8
lr = 5e-3
decay_lr = 5e-3
[output]
save_best_on_test = true
"#,
            dir.path().display().to_string()
        ),
    )
    .unwrap();
    let (run, stdout) = train(dir.path(), &config, "run", &[]);
    let (header, rows) = check_no_validation_run(&run);
    // 36 images in batches of 8: 5 steps per epoch (4 with a single image held out)
    let steps: Vec<&str> = rows.iter().map(|r| r[header.iter().position(|h| h == "step").unwrap()].as_str()).collect();
    assert_eq!(steps, ["5", "10", "15", "20"]);
    assert!(stdout.contains("no validation set: selected the last epoch (epoch 4, step 20)"), "{stdout}");
    let ckpt = checkpoint::load(&run.join("checkpoints/best_on_test.safetensors")).unwrap();
    assert_eq!(ckpt.selected_on.as_deref(), Some("test_accuracy"));
    hetsyn().args(["-q", "eval", "--checkpoint"]).arg(run.join("checkpoints/last.safetensors")).assert().success();
    hetsyn().args(["-q", "plot"]).arg(&run).assert().success();
}
