//! End-to-end tests of the `hetsyn` command line: train a short DMS run, re-evaluate
//! its checkpoints, and refuse bad configs and checkpoints with clear errors.

use std::fs;
use std::path::Path;

use assert_cmd::Command;

mod common;
use common::{hetsyn, SHORT_DMS};

fn write_config(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

/// Trains `config` quietly into `run` with extra arguments; asserts success.
fn train_quietly(config: &Path, run: &Path, extra: &[&str]) {
    hetsyn()
        .args(["-q", "train", "--no-progress", "--config"])
        .arg(config)
        .arg("--out")
        .arg(run)
        .args(extra)
        .assert()
        .success();
}

fn stderr_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "expected failure, got success: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "panic: {err}");
    err
}

#[test]
fn train_then_eval_reproduces_logged_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "short.toml", SHORT_DMS);
    let run = dir.path().join("run");
    hetsyn()
        .args(["-q", "train", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .args(["--threads", "2", "--set", "train.iterations=6"])
        .assert()
        .success();
    for file in
        ["config.toml", "metrics.csv", "summary.json", "checkpoints/last.safetensors", "checkpoints/best.safetensors"]
    {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    // no temp files left behind
    for entry in fs::read_dir(&run).unwrap().chain(fs::read_dir(run.join("checkpoints")).unwrap()) {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(!name.starts_with('.'), "temp file {name} left behind");
    }
    let metrics = fs::read_to_string(run.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = metrics.lines().collect();
    assert_eq!(lines.len(), 3, "header + 2 evaluations: {metrics}");
    assert!(lines[0].starts_with("step,iteration,epoch,train_loss,train_task_loss,train_regulariser_loss,train_accuracy,validation_loss,validation_accuracy,test_loss,test_accuracy,lr,mean_rate_hz,skipped_batches,elapsed_s"));

    // the resolved config re-runs as is
    let resolved = fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(resolved.contains("iterations = 6"));
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    for key in
        ["test_accuracy_at_best_validation", "last_test_accuracy", "best_test_accuracy", "best_validation_accuracy"]
    {
        assert!(summary[key].is_number(), "{key} missing in summary");
    }

    for which in ["best", "last"] {
        let ckpt = run.join(format!("checkpoints/{which}.safetensors"));
        let csv = dir.path().join(format!("{which}.csv"));
        let out = hetsyn().args(["-q", "eval", "--checkpoint"]).arg(&ckpt).arg("--csv").arg(&csv).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = fs::read_to_string(&csv).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().unwrap().clone();
        let row = reader.records().next().unwrap().unwrap();
        let get = |k: &str| row[headers.iter().position(|h| h == k).unwrap()].to_string();
        assert_eq!(get("test_accuracy"), get("logged_test_accuracy"), "{which}: eval differs from the logged value");
        let acc: f64 = get("test_accuracy").parse().unwrap();
        assert!((0.0..=1.0).contains(&acc));
    }
    // the best checkpoint's logged metrics are the ones of its step in metrics.csv
    let last_summary_step = summary["best_validation_step"].as_u64().unwrap();
    assert!(metrics.lines().any(|l| l.starts_with(&format!("{last_summary_step},"))));

    // a truncated checkpoint is refused with the file named
    let ckpt = run.join("checkpoints/best.safetensors");
    let bytes = fs::read(&ckpt).unwrap();
    let broken = dir.path().join("broken.safetensors");
    fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    let err = stderr_of(hetsyn().args(["eval", "--checkpoint"]).arg(&broken));
    assert!(err.contains("broken.safetensors"), "{err}");
    // garbage
    fs::write(&broken, b"this is not a checkpoint at all").unwrap();
    let err = stderr_of(hetsyn().args(["eval", "--checkpoint"]).arg(&broken));
    assert!(err.contains("broken.safetensors"), "{err}");
}

#[test]
fn bad_configs_are_refused_with_file_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("unknown key", SHORT_DMS.replace("seed = 3", "seed = 3\nsede = 4"), vec!["sede"]),
        (
            "unknown nested key",
            SHORT_DMS.replace("surrogate = \"triangle\"", "surrogate = \"triangle\"\nthreshhold = 2"),
            vec!["threshhold"],
        ),
        (
            "wrong type",
            SHORT_DMS.replace("batch_size = 8", "batch_size = \"eight\""),
            vec!["train.batch_size", "eight"],
        ),
        ("negative tau", SHORT_DMS.replace("tau_reset = 0.04", "tau_reset = -0.04"), vec!["model.tau_reset", "-0.04"]),
        ("negative tau init", SHORT_DMS.replace("mean = 0.04", "mean = -1.0"), vec!["model.tau_init.mean", "-1"]),
        (
            "decay range",
            SHORT_DMS.replace("surrogate = \"triangle\"", "surrogate = \"triangle\"\ndecay_max = 1.5"),
            vec!["model.decay_max", "1.5"],
        ),
        (
            "empty layers",
            SHORT_DMS.replace("layers = [{ size = 20, recurrent = true }]", "layers = []"),
            vec!["model.layers"],
        ),
        ("unknown model", SHORT_DMS.replace("kind = \"hetsynlif\"", "kind = \"lif\""), vec!["model.kind", "lif"]),
        ("bad toml", "name = ".to_string(), vec!["bad toml.toml"]),
    ];
    for (what, text, needles) in cases {
        let path = write_config(dir.path(), &format!("{what}.toml"), &text);
        let err = stderr_of(hetsyn().args(["train", "--config"]).arg(&path).arg("--out").arg(dir.path().join("x")));
        assert!(err.contains(&format!("{what}.toml")), "{what}: file not named: {err}");
        for n in needles {
            assert!(err.contains(n), "{what}: `{n}` not in: {err}");
        }
    }
    let err = stderr_of(hetsyn().args(["train", "--config"]).arg(dir.path().join("missing.toml")));
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn set_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "c.toml", SHORT_DMS);
    let run = dir.path().join("run");
    let extra = ["--seed", "9", "--set", "model.kind=homneulif", "--set", "train.iterations=2"];
    train_quietly(
        &config,
        &run,
        &[&extra[..], &["--set", "train.eval_every=2", "--set", "model.layers.0.size=7"]].concat(),
    );
    let resolved = fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(resolved.contains("kind = \"homneulif\""), "{resolved}");
    assert!(resolved.contains("seed = 9"));
    assert!(resolved.contains("size = 7"));
    let err = stderr_of(hetsyn().args(["train", "--config"]).arg(&config).args(["--set", "train.lr=-1"]));
    assert!(err.contains("train.lr") && err.contains("-1"), "{err}");
    let err = stderr_of(hetsyn().args(["train", "--config"]).arg(&config).args(["--set", "nonsense"]));
    assert!(err.contains("nonsense"), "{err}");
    // an override's error is blamed on the --set, in plain words, with a suggestion
    let err = stderr_of(hetsyn().args(["train", "--config"]).arg(&config).args(["--set", "train.iteratons=20"]));
    assert!(err.starts_with("error: --set train.iteratons=20:"), "{err}");
    assert!(err.contains("did you mean `iterations`?") && !err.contains("invalid config file"), "{err}");
    let err = stderr_of(hetsyn().args(["train", "--config"]).arg(&config).args(["--set", "train.batch_size=-4"]));
    assert!(err.contains("--set train.batch_size=-4") && err.contains("a whole number ≥ 0"), "{err}");
    let typo = write_config(dir.path(), "typo.toml", &SHORT_DMS.replace("kind = \"hetsynlif\"", "kind = \"hetsynlf\""));
    let err = stderr_of(hetsyn().args(["train", "--config"]).arg(&typo));
    assert!(err.contains("typo.toml") && err.contains("did you mean `hetsynlif`?"), "{err}");
}

#[test]
fn print_config_resolves_without_training() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "c.toml", SHORT_DMS);
    let run = dir.path().join("run");
    let out = hetsyn()
        .args(["train", "--print-config", "--set", "train.lr=0.25", "--seed", "4", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let resolved = hetsyn::config::Config::from_toml(&printed, &[]).unwrap();
    assert_eq!((resolved.train.lr, resolved.seed, resolved.train.beta2), (0.25, 4, 0.999), "defaults filled in");
    assert!(!run.exists(), "--print-config wrote {run:?}");
}

#[test]
fn checkpoint_of_another_architecture_is_refused() {
    use hetsyn::io::safetensors_file::{read_file, write_file};
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "c.toml", SHORT_DMS);
    let run = dir.path().join("run");
    train_quietly(&config, &run, &["--set", "train.iterations=1", "--set", "train.eval_every=1"]);
    let (tensors, mut metadata) = read_file(&run.join("checkpoints/best.safetensors")).unwrap();
    // the stored config now describes 7 hidden neurons, the tensors 20
    let changed = metadata["config"].replace("size = 20", "size = 7");
    assert_ne!(changed, metadata["config"]);
    metadata.insert("config".into(), changed);
    let other = dir.path().join("other.safetensors");
    write_file(&other, &tensors, &metadata).unwrap();
    let err = stderr_of(hetsyn().args(["eval", "--checkpoint"]).arg(&other));
    assert!(
        err.contains("other.safetensors") && err.contains("hidden.0.input.weight") && err.contains("shape"),
        "{err}"
    );
    // a model kind whose tensors differ (per-neuron decays instead of per-synapse)
    let (tensors, mut metadata) = read_file(&run.join("checkpoints/best.safetensors")).unwrap();
    metadata.insert("config".into(), metadata["config"].replace("kind = \"hetsynlif\"", "kind = \"hetneulif\""));
    write_file(&other, &tensors, &metadata).unwrap();
    let err = stderr_of(hetsyn().args(["eval", "--checkpoint"]).arg(&other));
    assert!(err.contains("other.safetensors") && err.contains("decay"), "{err}");
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "c.toml", &SHORT_DMS.replace("[model]", "[model]\ndropout = 0.1"));
    let mut outputs = Vec::new();
    for threads in ["1", "2"] {
        let run = dir.path().join(format!("run{threads}"));
        train_quietly(&config, &run, &["--threads", threads, "--set", "threads=0"]);
        let metrics = fs::read_to_string(run.join("metrics.csv")).unwrap();
        // all columns but the elapsed time
        let metrics: Vec<String> = metrics.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect();
        let (tensors, _) = hetsyn::io::safetensors_file::read_file(&run.join("checkpoints/last.safetensors")).unwrap();
        outputs.push((metrics, tensors));
    }
    assert_eq!(outputs[0].0, outputs[1].0, "metrics differ between 1 and 2 threads");
    assert!(outputs[0].1 == outputs[1].1, "parameters differ between 1 and 2 threads");
}

#[test]
fn logs_off_a_terminal_are_plain_lines_and_kept_in_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "c.toml", SHORT_DMS);
    let run = dir.path().join("run");
    let out = hetsyn().args(["train", "--no-plots", "--config"]).arg(&config).arg("--out").arg(&run).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    // 6 iterations, evaluated every 3: two lines, rounded, without colour codes
    let evaluated: Vec<&str> = err.lines().filter(|l| l.contains("evaluated")).collect();
    assert_eq!(evaluated.len(), 2, "{err}");
    assert!(!err.contains('\u{1b}'), "colour codes off a terminal: {err:?}");
    for line in &evaluated {
        let fields = line.split("evaluated").nth(1).unwrap_or_default();
        let long = fields.split([' ', '=']).any(|w| w.split('.').nth(1).is_some_and(|d| d.len() > 4));
        assert!(!long && line.contains("step=6") == (line == &evaluated[1]), "{line}");
    }
    let log = fs::read_to_string(run.join("train.log")).unwrap();
    assert!(log.starts_with("=== started"), "{log}");
    assert_eq!(log.lines().filter(|l| l.contains("evaluated")).count(), 2, "{log}");
    assert!(log.contains("test accuracy"), "the closing line is in train.log: {log}");
    // -q silences stderr, not train.log; --color always colours even off a terminal
    let quiet = dir.path().join("quiet");
    let out = hetsyn()
        .args(["-q", "--color", "always", "train", "--no-plots", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&quiet)
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = fs::read_to_string(quiet.join("train.log")).unwrap();
    assert_eq!(log.lines().filter(|l| l.contains("evaluated")).count(), 2, "{log}");
    assert!(!log.contains('\u{1b}'), "train.log has no colour: {log:?}");
    let out = hetsyn().args(["--color", "sometimes", "train"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn summary_and_checkpoints_record_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "c.toml", SHORT_DMS);
    let run = dir.path().join("run");
    train_quietly(&config, &run, &["--no-plots", "--set", "train.iterations=3"]);
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let commit = summary["git_commit"].as_str().unwrap();
    assert!(commit == "unknown" || (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit())), "{commit}");
    assert_eq!(summary["hetsyn_version"], env!("CARGO_PKG_VERSION"));
    let command = summary["command_line"].as_str().unwrap();
    assert!(command.contains("train") && command.contains("train.iterations=3"), "{command}");
    assert!(!summary["host"].as_str().unwrap().is_empty());
    // the safetensors header: 8-byte length, then JSON with __metadata__
    let bytes = fs::read(run.join("checkpoints/last.safetensors")).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let meta = &header["__metadata__"];
    for key in ["hetsyn_version", "git_commit", "command_line", "host"] {
        assert_eq!(meta[key], summary[key], "{key}");
    }
    hetsyn().arg("verify").arg(&run).assert().success();
}

#[test]
fn resume_refuses_a_foreign_checkpoint_and_eval_checks_its_csv_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "c.toml", SHORT_DMS);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let short = ["--no-plots", "--set", "train.iterations=2", "--set", "train.eval_every=2"];
    train_quietly(&config, &a, &short);
    train_quietly(&config, &b, &[&short[..], &["--set", "model.kind=homneulif"]].concat());
    fs::copy(b.join("checkpoints/last.safetensors"), a.join("checkpoints/last.safetensors")).unwrap();
    let before = fs::read(a.join("summary.json")).unwrap();
    let err = stderr_of(hetsyn().args(["train", "--resume"]).arg(&a));
    assert!(err.contains("model.kind") && err.contains("homneulif") && err.contains("config.toml"), "{err}");
    assert_eq!(fs::read(a.join("summary.json")).unwrap(), before, "nothing written");
    // eval --csv into a missing directory fails at once (no condition evaluated), naming the file
    let csv = dir.path().join("no/such/dir/x.csv");
    let out = hetsyn()
        .args(["eval", "--csv"])
        .arg(&csv)
        .arg("--checkpoint")
        .arg(b.join("checkpoints/last.safetensors"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("--csv") && err.contains("x.csv"), "{err}");
    assert!(out.stdout.is_empty(), "evaluated before failing: {}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn default_run_directories_never_collide_and_failures_leave_none() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let text = format!("{SHORT_DMS}\n[output]\ndir = {:?}\n", results.display().to_string());
    let config = write_config(dir.path(), "c.toml", &text);
    let start = || {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("hetsyn"))
            .args([
                "-q",
                "train",
                "--no-plots",
                "--set",
                "train.iterations=2",
                "--set",
                "train.eval_every=2",
                "--config",
            ])
            .arg(&config)
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (start(), start());
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let runs = || fs::read_dir(&results).unwrap().count();
    assert_eq!(runs(), 2, "two runs started together share a directory");
    // a run that fails before writing anything (its task cannot be built) leaves no directory
    let bad = write_config(
        dir.path(),
        "bad.toml",
        &text
            .replace("kind = \"dms\"", "kind = \"shd\"\ndata_dir = \"/no/such/dir\"")
            .replace("delay = 0.2\n", "")
            .replace("validation_trials = 32\n", "")
            .replace("test_trials = 48\n", ""),
    );
    let out = hetsyn().args(["train", "--config"]).arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("/no/such/dir/shd_train.h5"), "{err}");
    assert_eq!(runs(), 2, "{err}");
}
