//! The paper's experiments: each `scripts/paper/*.sh --dry-run` builds the grid it
//! should (count and keys of the configs, default and `--full`), and `hetsyn eval
//! --reset-long-tau` with the per-input-group time constants of summary.json
//! gives what `dms_tau_init.sh` tabulates.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::cargo_bin;
use hetsyn::config::{Config, ModelKind, TaskConfig, TauInit};
use hetsyn::checkpoint;
use hetsyn::tasks::speech::Validation;

mod common;
use common::{hetsyn, SHORT_DMS};

/// The paper's run counts: Fig. 2 and App. B (pattern generation), Fig. 3B-G
/// and App. C (DMS), Table 4 (per column), SHD (Fig. 4).
const PAPER_RUNS_FIG2: usize = 10;
const PAPER_RUNS_FIG3: usize = 50;
const PAPER_RUNS_TABLE4: usize = 5;

/// Runs `scripts/paper/<name>.sh --dry-run [extra]` into `out` (results kept in
/// an empty `out/results`); returns the configs it wrote.
fn dry_run(name: &str, out: &Path, extra: &[&str]) -> Vec<Config> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/paper").join(format!("{name}.sh"));
    let output = Command::new("bash")
        .arg(&script)
        .args(["--dry-run", "--out"])
        .arg(out)
        .arg("--results")
        .arg(out.join("results"))
        .args(extra)
        .env("HETSYN_BIN", cargo_bin("hetsyn"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{name}: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let mut files: Vec<PathBuf> = fs::read_dir(out.join("configs")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(stdout.starts_with(&format!("{} configs in", files.len())), "{name}: {stdout}");
    assert!(!out.join("runs").exists(), "{name}: a dry run trains nothing");
    files.iter().map(|f| Config::load(f, &[]).unwrap()).collect()
}

fn distinct<T: PartialEq>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn dms(c: &Config) -> &hetsyn::tasks::dms::DmsConfig {
    match &c.task {
        TaskConfig::Dms(d) => d,
        _ => panic!("not a dms config"),
    }
}

/// Every mode trains for the paper's length and evaluates on its trial counts
/// (configs/dms.toml): a reduced experiment has fewer seeds, never shorter training.
fn assert_dms_sizes(configs: &[Config]) {
    for c in configs {
        let want = (1000, 32, 25, 256, 512);
        let d = dms(c);
        let got = (c.train.iterations, c.train.batch_size, c.train.eval_every, d.validation_trials, d.test_trials);
        assert_eq!(got, want, "{}", c.name);
    }
}

#[test]
fn dms_neurons_grid() {
    let dir = tempfile::tempdir().unwrap();
    let configs = dry_run("dms_neurons", dir.path(), &[]);
    assert_eq!(configs.len(), 4 * 4 * 2 * 5);
    assert_dms_sizes(&configs);
    let mut sizes = distinct(configs.iter().map(|c| c.model.layers[0].size));
    sizes.sort();
    assert_eq!(sizes, [5, 20, 50, 100]);
    assert_eq!(distinct(configs.iter().map(|c| c.model.kind)).len(), 4);
    assert_eq!(distinct(configs.iter().map(|c| c.model.layers[0].recurrent)).len(), 2);
    assert_eq!(distinct(configs.iter().map(|c| c.seed)), [0, 1, 2, 3, 4]);
    assert!(configs.iter().all(|c| (c.model.adaptation_tau, c.model.adaptation_strength) == (0.8, 0.15)));
    assert!(configs.iter().all(|c| c.train.rate_reg == 0.01));
    let full = dry_run("dms_neurons", &dir.path().join("full"), &["--full"]);
    assert_eq!(full.len(), 4 * 4 * 2 * PAPER_RUNS_FIG3, "the paper's 50 runs per cell");
    assert_dms_sizes(&full);
}

#[test]
fn dms_delay_noise_grid() {
    let dir = tempfile::tempdir().unwrap();
    let configs = dry_run("dms_delay_noise", dir.path(), &[]);
    assert_eq!(configs.len(), 13 * 4 * 3);
    assert_dms_sizes(&configs);
    let mut conditions =
        distinct(configs.iter().map(|c| (dms(c).delay, dms(c).addition_noise_rate, dms(c).noise_rate)));
    conditions.sort_by(|a, b| a.partial_cmp(b).unwrap());
    #[rustfmt::skip]
    let want = [
        (0.8, 0.0, 0.0), (0.8, 0.0, 5.0), (0.8, 0.0, 10.0), (0.8, 0.0, 15.0), (0.8, 0.0, 20.0),
        (0.8, 5.0, 10.0), (0.8, 10.0, 10.0), (0.8, 15.0, 10.0), (0.8, 20.0, 10.0),
        (1.2, 0.0, 10.0), (1.6, 0.0, 10.0), (2.0, 0.0, 10.0), (2.5, 0.0, 10.0),
    ];
    assert_eq!(conditions, want, "one change at a time from configs/dms.toml; both noise readings; the recipe once");
    assert!(configs.iter().all(|c| c.model.layers[0].recurrent && c.model.layers[0].size == 100));
    let full = dry_run("dms_delay_noise", &dir.path().join("full"), &["--full"]);
    assert_eq!(full.len(), 13 * 4 * PAPER_RUNS_FIG3);
    assert_dms_sizes(&full);
}

#[test]
fn dms_decay_masking_grid() {
    let dir = tempfile::tempdir().unwrap();
    let configs = dry_run("dms_decay_masking", dir.path(), &[]);
    assert_eq!(configs.len(), 2 * 7 * 3);
    assert_eq!(distinct(configs.iter().map(|c| dms(c).delay)), [0.8, 2.5]);
    assert_dms_sizes(&configs);
    let fractions = |configs: &[Config]| {
        let mut bits = distinct(configs.iter().map(|c| c.model.frozen_decay_fraction.to_bits()));
        bits.sort();
        bits.into_iter().map(f64::from_bits).collect::<Vec<f64>>()
    };
    assert_eq!(fractions(&configs), [0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0], "the masking curve of Fig. 3C");
    assert!(configs.iter().all(|c| c.model.kind == ModelKind::Hetsynlif));
    let full = dry_run("dms_decay_masking", &dir.path().join("full"), &["--full"]);
    assert_eq!(full.len(), 2 * 7 * PAPER_RUNS_FIG3);
    assert_eq!(fractions(&full), [0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0]);
    assert_dms_sizes(&full);
}

#[test]
fn dms_tau_init_grid() {
    let dir = tempfile::tempdir().unwrap();
    let configs = dry_run("dms_tau_init", dir.path(), &[]);
    assert_eq!(configs.len(), 2 * 3 * PAPER_RUNS_TABLE4);
    assert_dms_sizes(&configs);
    let inits = distinct(configs.iter().map(|c| c.model.tau_init));
    assert_eq!(
        inits,
        [0.1, 0.2, 0.4].map(|mean| TauInit::Normal { mean, std: mean / 10.0 }),
        "N(100 | 200 | 400 ms, 10 % sd)"
    );
    assert!(configs.iter().all(|c| c.model.kind == ModelKind::Hetsynlif && c.output.tau_threshold == 0.7));
    assert_eq!(distinct(configs.iter().map(|c| c.model.layers[0].recurrent)).len(), 2, "F and R");
    let full = dry_run("dms_tau_init", &dir.path().join("full"), &["--full"]);
    assert_eq!(full.len(), 2 * 3 * PAPER_RUNS_TABLE4, "the paper's 5 runs per column");
}

#[test]
fn pattern_grid() {
    let dir = tempfile::tempdir().unwrap();
    let configs = dry_run("pattern", dir.path(), &[]);
    assert_eq!(configs.len(), 4 * 4 * 2 * 3);
    let noise = |c: &Config| match &c.task {
        TaskConfig::Pattern(p) => p.noise_rate,
        _ => panic!("not a pattern config"),
    };
    assert_eq!(distinct(configs.iter().map(noise)), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(distinct(configs.iter().map(|c| c.seed)), [0, 1, 2]);
    let paper_length =
        |c: &Config| (c.train.lr, c.train.decay_lr, c.train.iterations, c.train.batch_size) == (1e-3, 1e-3, 1000, 1);
    assert!(configs.iter().all(paper_length));
    let full = dry_run("pattern", &dir.path().join("full"), &["--full"]);
    assert_eq!(full.len(), 4 * 4 * 2 * PAPER_RUNS_FIG2, "the paper's 10 runs");
    assert!(full.iter().all(paper_length));
}

/// Fig. A1: four learning rates, the same for weights and decays; Fig. A2: three targets.
#[test]
fn pattern_learning_rate_and_targets_grids() {
    let dir = tempfile::tempdir().unwrap();
    let targets = |c: &Config| match &c.task {
        TaskConfig::Pattern(p) => (p.targets, p.noise_rate),
        _ => panic!("not a pattern config"),
    };
    let lr = dry_run("pattern_lr", &dir.path().join("lr"), &[]);
    assert_eq!(lr.len(), 4 * 4 * 2 * 3);
    let mut rates = distinct(lr.iter().map(|c| c.train.lr));
    rates.sort_by(f64::total_cmp);
    assert_eq!(rates, [1e-4, 5e-4, 1e-3, 5e-3]);
    assert!(lr.iter().all(|c| c.train.decay_lr == c.train.lr && (c.train.iterations, c.train.batch_size) == (1000, 1)));
    assert!(lr.iter().all(|c| targets(c) == (1, 2.0)));
    let full = dry_run("pattern_lr", &dir.path().join("lr-full"), &["--full"]);
    assert_eq!(full.len(), 4 * 4 * 2 * PAPER_RUNS_FIG2, "the paper's 10 runs");

    let three = dry_run("pattern_targets", &dir.path().join("targets"), &[]);
    assert_eq!(three.len(), 4 * 2 * 3);
    assert!(three.iter().all(|c| targets(c) == (3, 2.0) && c.train.lr == 1e-3 && c.train.iterations == 1000));
    let full = dry_run("pattern_targets", &dir.path().join("targets-full"), &["--full"]);
    assert_eq!(full.len(), 4 * 2 * PAPER_RUNS_FIG2, "the paper's 10 runs");
}

#[test]
fn seeds_and_set_options() {
    let dir = tempfile::tempdir().unwrap();
    let configs = dry_run("dms_tau_init", dir.path(), &["--seeds", "1", "--set", "train.eval_every=50"]);
    assert_eq!(configs.len(), 6);
    assert!(configs.iter().all(|c| c.seed == 0 && c.train.eval_every == 50 && c.train.iterations == 1000));
    let configs = dry_run("dms_neurons", &dir.path().join("full"), &["--full", "--seeds", "2"]);
    assert_eq!(distinct(configs.iter().map(|c| c.seed)), [0, 1]);
}

#[test]
fn scripts_refuse_bad_arguments() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/paper/dms_neurons.sh");
    for args in [&["--bogus"][..], &["--jobs", "0"], &["--jobs"], &["--seeds", "0"], &["--seeds", "x"], &["--set"]] {
        let out = Command::new("bash").arg(&script).args(args).env("HETSYN_BIN", cargo_bin("hetsyn")).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("dms_neurons.sh:"), "{args:?}");
    }
    let help = Command::new("bash").arg(&script).arg("-h").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--full") && text.contains("--dry-run") && text.contains("success rate"), "{text}");
}

#[test]
fn eval_resets_long_time_constants() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    // a threshold near the initial taus (N(40 ms, 4 ms)) so that some exceed it
    fs::write(&config, format!("{SHORT_DMS}[output]\ntau_threshold = 0.041\n")).unwrap();
    let run = dir.path().join("runs/a");
    hetsyn().args(["-q", "train", "--no-plots", "--config"]).arg(&config).arg("--out").arg(&run).assert().success();

    // summary.json: the first layer's input taus per DMS channel group
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let groups = &summary["input_tau_at_best_validation"];
    for (group, count) in [("left_cue", 200), ("right_cue", 200), ("cue", 400), ("noise", 200)] {
        assert_eq!(groups[group]["count"], count, "{group}: {groups}");
        let mean = groups[group]["mean_ms"].as_f64().unwrap();
        assert!((20.0..80.0).contains(&mean), "{group}: mean {mean} ms");
    }

    let best = run.join("checkpoints/best.safetensors");
    let out = hetsyn()
        .args(["-q", "eval", "--reset-long-tau", "--noise-rates", "20", "--checkpoint"])
        .arg(&best)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = fs::read_to_string(run.join("checkpoints/best.eval.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let col = |row: &csv::StringRecord, k: &str| row[headers.iter().position(|h| h == k).unwrap()].to_string();
    let conditions: Vec<String> = rows.iter().map(|r| col(r, "condition")).collect();
    assert_eq!(conditions, ["clean", "clean+reset_long_tau", "noise_rate=20", "noise_rate=20+reset_long_tau"]);
    assert_eq!(col(&rows[0], "test_accuracy"), col(&rows[0], "logged_test_accuracy"));
    assert_eq!(col(&rows[0], "reset_fraction"), "");

    // the reset fraction is that of the learnable decays above 41 ms
    let ckpt = checkpoint::load(&best).unwrap();
    let (mut above, mut total) = (0, 0);
    for (info, data) in ckpt.network.params() {
        if info.kind == hetsyn::model::ParamKind::Decay {
            total += data.len();
            above += data.iter().filter(|d| hetsyn::train::tau_stats::tau_ms(**d as f64, 0.005) > 41.0).count();
        }
    }
    let fraction: f64 = col(&rows[1], "reset_fraction").parse().unwrap();
    assert!(above > 0 && above < total, "{above} of {total}");
    assert_eq!(fraction, above as f64 / total as f64);
    assert_eq!(col(&rows[3], "reset_fraction"), col(&rows[1], "reset_fraction"));

    // Table 4's reading: only the first layer's input synapses above the
    // threshold, reset to the initial mean exp(-dt / 40 ms), and the same to
    // their own initial values; rows per (scope, target)
    let reset_csv = dir.path().join("reset.csv");
    let out = hetsyn()
        .args(["-q", "eval", "--reset-synapses", "first-input,all", "--reset-to", "mean", "--checkpoint"])
        .arg(&best)
        .arg("--csv")
        .arg(&reset_csv)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut reader = csv::Reader::from_path(&reset_csv).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let conditions: Vec<String> = rows.iter().map(|r| col(r, "condition")).collect();
    assert_eq!(conditions, ["clean", "clean+reset_first_input_to_mean", "clean+reset_all_to_mean"]);
    let input = &ckpt.network.params().into_iter().find(|(i, _)| i.name == "hidden.0.input.decay").unwrap().1.to_vec();
    let long = input.iter().filter(|d| hetsyn::train::tau_stats::tau_ms(**d as f64, 0.005) > 41.0).count();
    assert!(long > 0 && long < above, "{long} of the input synapses, {above} in all");
    assert_eq!(col(&rows[1], "reset_fraction").parse::<f64>().unwrap(), long as f64 / input.len() as f64);
    assert_eq!(col(&rows[2], "reset_fraction").parse::<f64>().unwrap(), fraction);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("+reset_first_input_to_mean: reset {long} of {}", input.len())), "{stdout}");
    let err = hetsyn().args(["-q", "eval", "--reset-to", "average", "--checkpoint"]).arg(&best).output().unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("average"));

    // hetsyn summarize reads the eval CSV of the best checkpoint
    let out = hetsyn()
        .args(["-q", "summarize"])
        .arg(dir.path().join("runs"))
        .args([
            "--metrics",
            "eval.clean+reset_long_tau.test_accuracy,eval.clean+reset_long_tau.reset_fraction,input_tau_at_best_validation.noise.mean_ms",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains(&format!("{fraction:.4} ± 0.0000")), "{md}");
}

#[test]
fn shd_grid_and_a_tiny_run() {
    let dir = tempfile::tempdir().unwrap();
    let speech = |c: &Config| match &c.task {
        TaskConfig::Shd(s) => s.clone(),
        _ => panic!("not an shd config"),
    };
    // without data: a dry run still writes the grid; 3 seeds x 4 models, each the paper's length
    let configs = dry_run("shd", &dir.path().join("default"), &[]);
    assert_eq!(configs.len(), 12);
    assert_eq!(distinct(configs.iter().map(|c| c.model.kind)).len(), 4);
    let full = dry_run("shd", &dir.path().join("full"), &["--full"]);
    assert_eq!(full.len(), 40);
    // --full: the paper's 10 runs of each model (paper §4.3, App. D)
    for kind in [ModelKind::Hetsynlif, ModelKind::Hetneulif, ModelKind::Homneualif, ModelKind::Homneulif] {
        let seeds: Vec<u64> = full.iter().filter(|c| c.model.kind == kind).map(|c| c.seed).collect();
        assert_eq!(distinct(seeds.iter().copied()), (0..10).collect::<Vec<u64>>(), "{kind:?}");
        assert_eq!(seeds.len(), 10, "{kind:?}");
    }
    for c in configs.iter().chain(&full) {
        assert_eq!((c.train.epochs, speech(c).train_limit), (100, 0));
        assert_eq!(speech(c).validation, Some(Validation::Fraction));
        assert!(!c.output.save_best_on_test);
        // HomNeuALIF adapts as in the paper's SHD runs: tau_a = 100 ms, a = 0.05
        assert_eq!((c.model.adaptation_tau, c.model.adaptation_strength), (0.1, 0.05), "{}", c.name);
    }
    // the authors' protocol: the same grid on configs/shd_authors.toml, no validation set
    let authors = dry_run("shd", &dir.path().join("authors"), &["--protocol", "authors"]);
    assert_eq!(authors.len(), 12);
    assert_eq!(distinct(authors.iter().map(|c| c.model.kind)).len(), 4);
    for c in &authors {
        assert_eq!((c.train.epochs, speech(c).train_limit), (100, 0));
        assert_eq!(speech(c).validation, Some(Validation::None), "{}", c.name);
        assert!(c.output.save_best_on_test);
    }
    // --protocol heldout is the default (the configs but for their cache directory, inside --out)
    let without_cache = |configs: &[Config]| -> Vec<Config> {
        let mut configs = configs.to_vec();
        for c in &mut configs {
            if let TaskConfig::Shd(s) = &mut c.task {
                s.cache_dir.clear();
            }
        }
        configs
    };
    let explicit = dry_run("shd", &dir.path().join("heldout"), &["--protocol", "heldout"]);
    assert!(without_cache(&explicit) == without_cache(&configs), "--protocol heldout is not the default");
    // a real run needs the files, and says so
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/paper/shd.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["--data", "/nonexistent", "--out"])
        .arg(dir.path().join("x"))
        .env("HETSYN_BIN", cargo_bin("hetsyn"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/shd_train.h5"));
    for protocol in [&["--protocol", "paper"][..], &["--protocol"]] {
        let out = Command::new("bash")
            .arg(&script)
            .args(protocol)
            .args(["--dry-run", "--out"])
            .arg(dir.path().join("y"))
            .env("HETSYN_BIN", cargo_bin("hetsyn"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{protocol:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("shd.sh: --protocol") && err.contains("heldout or authors"), "{err}");
        assert!(!dir.path().join("y").exists());
    }

    // end to end on the small separable set under the official names
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    fs::copy(fixtures.join("sep_train.h5"), data.join("shd_train.h5")).unwrap();
    fs::copy(fixtures.join("sep_test.h5"), data.join("shd_test.h5")).unwrap();
    let out_dir = dir.path().join("tiny");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--data")
        .arg(&data)
        .args(["--seeds", "1", "--set", "train.epochs=3"])
        .arg("--out")
        .arg(&out_dir)
        .env("HETSYN_BIN", cargo_bin("hetsyn"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // a changed recipe (--set) without --results records nothing and draws nothing
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("shd: nothing recorded"), "{stdout}");
    assert!(!stdout.contains("shd_deletion.png"), "{stdout}");
    let table = fs::read_to_string(out_dir.join("runs/summary.md")).unwrap();
    for column in [
        "eval.delete_prob=0.01.test_accuracy",
        "eval.delete_prob=0.64.test_accuracy",
        "eval.time_warp=1.189207115002721.test_accuracy",
        "eval.time_warp_random_mean.test_accuracy",
        "last_test_accuracy",
    ] {
        assert!(table.contains(column), "{column}: {table}");
    }
    for kind in ["hetsynlif", "hetneulif", "homneulif", "homneualif"] {
        assert!(table.lines().any(|l| l.starts_with(&format!("| {kind} | 1 |"))), "{kind}: {table}");
    }

    // the authors' protocol end to end: no best.safetensors; the best-on-test checkpoint is evaluated
    let authors_dir = dir.path().join("tiny-authors");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--data")
        .arg(&data)
        .args(["--protocol", "authors", "--seeds", "1", "--set", "train.epochs=2"])
        .arg("--out")
        .arg(&authors_dir)
        .arg("--results")
        .arg(dir.path().join("tiny-results"))
        .arg("--figures")
        .arg(dir.path().join("tiny-figures"))
        .env("HETSYN_BIN", cargo_bin("hetsyn"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs: Vec<PathBuf> = fs::read_dir(authors_dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("summary.json").is_file())
        .collect();
    assert_eq!(runs.len(), 4);
    for run in &runs {
        let checkpoints = run.join("checkpoints");
        assert!(!checkpoints.join("best.safetensors").exists(), "{}", run.display());
        assert!(checkpoints.join("best_on_test.eval.csv").is_file(), "{}", run.display());
        assert!(!checkpoints.join("last.eval.csv").exists());
        let summary: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
        assert_eq!((summary["selected_on"].as_str(), summary["epochs"].as_f64()), (Some("last"), Some(2.0)));
    }
    let table = fs::read_to_string(authors_dir.join("runs/summary.md")).unwrap();
    let header = table.lines().next().unwrap();
    assert!(header.contains("| best_test_accuracy | last_test_accuracy | eval.delete_prob=0.01"), "{table}");
    assert!(!header.contains("at_best_validation"), "{table}");
    assert!(table.contains("4 of 4 runs have no validation set"), "{table}");
    assert!(table.contains("checkpoints/best_on_test.eval.csv (4 runs)"), "{table}");
    // the authors' protocol's rows carry its name in the experiment column, and so do its figures
    let csv = fs::read_to_string(dir.path().join("tiny-results/shd_deletion.csv")).unwrap();
    let rows = csv.lines().filter(|l| l.starts_with("shd_authors,")).count();
    assert_eq!((rows, csv.lines().count()), (4 * 8, 4 * 8 + 1), "4 models x 8 probabilities\n{csv}");
    assert!(dir.path().join("tiny-figures/shd_authors_deletion.png").is_file());
    let recorded = fs::read_to_string(dir.path().join("tiny-results/shd_authors.csv")).unwrap();
    assert_eq!(recorded.lines().count(), 1 + 4, "hetsyn record: a row per run\n{recorded}");
}

/// The rows of a results CSV as maps from column to cell.
fn csv_rows(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| headers.iter().map(String::from).zip(r.unwrap().iter().map(String::from)).collect())
        .collect()
}

/// A smoke test of the SHD pipeline, not a result: `scripts/paper/shd.sh` on a
/// 40 + 20-sample synthetic file in the official layout (tests/fixtures/sep_*.h5,
/// 4 classes), 2 seeds, 8 epochs at a higher learning rate, trains the four models,
/// evaluates them under the paper's deletions and warps, records the CSV rows and
/// draws the figures; a second run records nothing twice; the figures are redrawn
/// from the CSVs alone.
#[test]
fn shd_script_records_and_draws_the_papers_figures() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    fs::copy(fixtures.join("sep_train.h5"), data.join("shd_train.h5")).unwrap();
    fs::copy(fixtures.join("sep_test.h5"), data.join("shd_test.h5")).unwrap();
    let (results, figures) = (dir.path().join("results"), dir.path().join("figures"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/paper/shd.sh");
    let run_script = || {
        let out = Command::new("bash")
            .arg(&script)
            .arg("--data")
            .arg(&data)
            .args(["--seeds", "2", "--set", "train.epochs=8", "--set", "train.schedule.span_epochs=8"])
            .args(["--set", "train.lr=1e-2", "--set", "train.decay_lr=1e-2", "--out"])
            .arg(dir.path().join("out"))
            .arg("--results")
            .arg(&results)
            .arg("--figures")
            .arg(&figures)
            .env("HETSYN_BIN", cargo_bin("hetsyn"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let stdout = run_script();
    assert!(stdout.contains("recorded 8 runs into"), "{stdout}");
    // hetsyn record: a row per run with the accuracies, beside the figures' CSVs
    let recorded = csv_rows(&results.join("shd.csv"));
    assert_eq!(recorded.len(), 8);
    assert!(recorded.iter().all(|r| r.contains_key("eval.delete_prob=0.64.test_accuracy")));
    let models = ["hetsynlif", "hetneulif", "homneualif", "homneulif"];

    // deletion: the clean test set (p = 0) and the paper's seven probabilities, per run
    let deletion = csv_rows(&results.join("shd_deletion.csv"));
    assert_eq!(deletion.len(), 4 * 2 * 8);
    let runs = dir.path().join("out/runs");
    for model in models {
        for seed in ["0", "1"] {
            let rows: Vec<_> = deletion.iter().filter(|r| r["model"] == model && r["seed"] == seed).collect();
            let ps: Vec<f64> = rows.iter().map(|r| r["delete_prob"].parse().unwrap()).collect();
            assert_eq!(ps, [0.0, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64], "{model} {seed}");
            assert!(rows.iter().all(|r| r["experiment"] == "shd"));
            let accuracy = |r: &std::collections::BTreeMap<String, String>| r["test_accuracy"].parse::<f64>().unwrap();
            assert!(rows.iter().all(|r| (0.0..=1.0).contains(&accuracy(r))));
            // p = 0 is the reported model's test accuracy, as training logged it
            let summary: serde_json::Value = serde_json::from_str(
                &fs::read_to_string(runs.join(format!("kind-{model}_seed-{seed}/summary.json"))).unwrap(),
            )
            .unwrap();
            let logged = summary["test_accuracy_at_best_validation"].as_f64().unwrap();
            assert!((accuracy(rows[0]) - logged).abs() < 1e-9, "{model} {seed}: {} vs {logged}", accuracy(rows[0]));
            assert_eq!(rows[0]["commit"], summary["git_commit"].as_str().unwrap());
        }
    }

    // warps: log2 alpha = 0 (clean), 0.25 (Fig. A4) and the same 20 draws from U(-0.5, 0.5) for every run
    let warp = csv_rows(&results.join("shd_warp.csv"));
    assert_eq!(warp.len(), 4 * 2 * 22);
    let mut draws: Vec<Vec<String>> = Vec::new();
    for model in models {
        for seed in ["0", "1"] {
            let l: Vec<f64> = warp
                .iter()
                .filter(|r| r["model"] == model && r["seed"] == seed)
                .map(|r| r["log2_alpha"].parse().unwrap())
                .collect();
            assert_eq!(l.len(), 22);
            assert_eq!(l[0], 0.0);
            assert!((l[1] - 0.25).abs() < 1e-12, "{l:?}");
            assert!(l[2..].iter().all(|v| (-0.5..0.5).contains(v) && *v != 0.0), "{l:?}");
            draws.push(l[2..].iter().map(|v| v.to_string()).collect());
        }
    }
    assert!(draws.iter().all(|d| *d == draws[0]), "every run sees the same 20 warps");

    // synaptic time constants: HetSynLIF only, every synapse once per stage, all in U(5, 20) ms before training
    let tau = csv_rows(&results.join("shd_tau.csv"));
    assert!(tau.iter().all(|r| r["model"] == "hetsynlif"), "only HetSynLIF has per-synapse time constants");
    let groups = [
        ("input_to_hidden1", 128 * 700),
        ("hidden1_recurrent", 128 * 128),
        ("hidden1_to_hidden2", 64 * 128),
        ("hidden2_recurrent", 64 * 64),
        ("hidden_to_output", 64 * 4),
    ];
    for seed in ["0", "1"] {
        for stage in ["before", "after"] {
            for (group, synapses) in groups {
                let rows: Vec<_> =
                    tau.iter().filter(|r| r["seed"] == seed && r["stage"] == stage && r["synapses"] == group).collect();
                let total: usize = rows.iter().map(|r| r["count"].parse::<usize>().unwrap()).sum();
                assert_eq!(total, synapses, "{seed} {stage} {group}");
                if stage == "before" {
                    let lows: Vec<f64> = rows.iter().map(|r| r["tau_low_ms"].parse().unwrap()).collect();
                    assert!(lows.iter().all(|l| (5.0..20.0).contains(l)), "{group}: {lows:?}");
                }
            }
        }
    }
    assert!(
        tau.iter().any(|r| r["stage"] == "after" && r["tau_low_ms"].parse::<f64>().unwrap() >= 20.0),
        "training moved some time constants above 20 ms"
    );

    // the figures and the table, a line per model in the paper's order
    let stems = ["shd_deletion", "shd_warp", "shd_warp_curve", "shd_warp_a4", "shd_tau_output", "shd_tau_layers"];
    for stem in stems {
        for ext in ["png", "svg"] {
            let f = figures.join(format!("{stem}.{ext}"));
            assert!(fs::metadata(&f).map(|m| m.len() > 1000).unwrap_or(false), "{}", f.display());
        }
    }
    let svg = fs::read_to_string(figures.join("shd_deletion.svg")).unwrap();
    for text in ["probability p of deleting each input spike", "test accuracy (%)", "HetSynLIF", "HomNeuLIF", "0.64"] {
        assert!(svg.contains(text), "{text}");
    }
    let svg = fs::read_to_string(figures.join("shd_warp_curve.svg")).unwrap();
    assert!(svg.contains("log2 of the time-warp factor α") && !svg.contains("e-16"));
    let svg = fs::read_to_string(figures.join("shd_tau_output.svg")).unwrap();
    assert!(svg.contains("% above 20 ms") && svg.contains("synaptic time constant τ (ms)"));
    let table = fs::read_to_string(figures.join("shd_table.md")).unwrap();
    let at = |name: &str| table.find(&format!("| {name} | 2 |")).unwrap_or_else(|| panic!("{name}: {table}"));
    assert!(
        at("HetSynLIF") < at("HetNeuLIF") && at("HetNeuLIF") < at("HomNeuALIF") && at("HomNeuALIF") < at("HomNeuLIF")
    );
    assert!(table.contains("| HetSynLIF | hidden → output synapses | 2 | 0.0 % |"), "{table}");

    // again: nothing trained or recorded twice
    let before: Vec<String> = ["shd_deletion.csv", "shd_warp.csv", "shd_tau.csv"]
        .iter()
        .map(|f| fs::read_to_string(results.join(f)).unwrap())
        .collect();
    let stdout = run_script();
    assert!(stdout.contains("recorded 0 runs into") && stdout.contains("(8 recorded before)"), "{stdout}");
    let after: Vec<String> = ["shd_deletion.csv", "shd_warp.csv", "shd_tau.csv"]
        .iter()
        .map(|f| fs::read_to_string(results.join(f)).unwrap())
        .collect();
    assert_eq!(before, after);

    // the figures from the CSVs alone, the runs gone
    fs::remove_dir_all(dir.path().join("out")).unwrap();
    let redrawn = dir.path().join("redrawn");
    let out =
        hetsyn().args(["-q", "figures", "shd", "--results"]).arg(&results).arg("--out").arg(&redrawn).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fs::read_to_string(redrawn.join("shd_table.md")).unwrap(), table);
    for stem in stems {
        assert!(redrawn.join(format!("{stem}.png")).is_file(), "{stem}");
    }
    // without recorded rows it says which file is missing
    let out = hetsyn().args(["-q", "figures", "shd", "--results"]).arg(dir.path().join("none")).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("shd_deletion.csv"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
