//! The SHD/SSC tasks on the small separable set of `tests/fixtures/make_shd_fixtures.py`
//! (`sep_{train,valid,test}.h5`: 4 classes, 0.2 s samples, speakers 0..3
//! independent of the class): validation splits, epochs, training above chance
//! and the perturbed evaluations.

mod common;

use std::fs;
use std::path::Path;

use common::{fixture, hetsyn, separable_config, SEPARABLE};
use hetsyn::data::read_spike_file;
use hetsyn::tasks::speech::{Corpus, Speech, SpeechConfig, Validation};
use hetsyn::tasks::{Input, Perturbation, Sample, Target, Task};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn config(cache: &Path) -> SpeechConfig {
    let mut c = SpeechConfig {
        data_dir: fixture("").display().to_string(),
        train_file: "sep_train.h5".into(),
        valid_file: "sep_valid.h5".into(),
        test_file: "sep_test.h5".into(),
        cache_dir: cache.display().to_string(),
        ..SpeechConfig::default()
    };
    c.binning.duration_ms = 200.0;
    c
}

fn label(s: &Sample) -> usize {
    match s.target {
        Target::Class(c) => c,
        _ => panic!("a class target"),
    }
}

#[test]
fn validation_splits_hold_out_what_they_say() {
    let cache = tempfile::tempdir().unwrap();
    let speakers = read_spike_file(&fixture("sep_train.h5")).unwrap().speakers.unwrap();

    // speaker split: exactly the samples of speakers 1 and 2, never trained on
    let mut c = config(cache.path());
    c.validation = Some(Validation::Speaker);
    c.validation_speakers = vec![1, 2];
    let mut task = Speech::new(Corpus::Shd, c, 0).unwrap();
    let held = speakers.iter().filter(|s| [1, 2].contains(*s)).count();
    assert_eq!(task.validation().len(), held);
    assert_eq!(task.training().epoch_len(), Some(speakers.len() - held));
    assert_eq!((task.shape().outputs, task.shape().steps, task.shape().channels), (4, 50, 700));
    let validation: Vec<Sample> = task.validation().to_vec();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let per_epoch = (speakers.len() - held).div_ceil(8) as u64;
    let epoch: Vec<Sample> = (0..per_epoch).flat_map(|i| task.training().batch(i, 8, &mut rng)).collect();
    assert_eq!(epoch.len(), speakers.len() - held, "one epoch visits every training sample once");
    for s in &epoch {
        assert!(!validation.contains(s), "a held-out speaker's sample was drawn for training");
        assert_eq!(epoch.iter().filter(|t| *t == s).count(), 1);
    }

    // a speaker that is not in the file: the error lists the ones that are
    let mut c = config(cache.path());
    c.validation = Some(Validation::Speaker);
    c.validation_speakers = vec![9];
    let e = format!("{:#}", Speech::new(Corpus::Shd, c, 0).err().unwrap());
    assert!(e.contains("validation_speakers") && e.contains("[0, 1, 2, 3]"), "{e}");

    // seeded fraction: 10 % of 40, disjoint from training, a function of the seed
    let mut a = Speech::new(Corpus::Shd, config(cache.path()), 1).unwrap();
    let b = Speech::new(Corpus::Shd, config(cache.path()), 1).unwrap();
    let other = Speech::new(Corpus::Shd, config(cache.path()), 2).unwrap();
    assert_eq!(a.validation().len(), 4);
    assert_eq!(a.training().epoch_len(), Some(36));
    assert_eq!(a.validation(), b.validation());
    assert_ne!(a.validation(), other.validation());

    // SSC's default: the valid file
    let mut ssc = Speech::new(Corpus::Ssc, config(cache.path()), 0).unwrap();
    assert_eq!(ssc.validation().len(), 12);
    assert_eq!(ssc.training().epoch_len(), Some(40));
    assert_eq!(ssc.test().len(), 20);

    // class count from the labels: 20 for the SHD-layout fixture
    let mut c = config(cache.path());
    c.train_file = "shd_f16.h5".into();
    c.test_file = "shd_f32.h5".into();
    c.binning.duration_ms = 1000.0;
    let shd = Speech::new(Corpus::Shd, c, 0).unwrap();
    assert_eq!((shd.shape().outputs, shd.shape().steps), (20, 250));
}

#[test]
fn missing_files_are_named() {
    let cache = tempfile::tempdir().unwrap();
    let mut c = config(cache.path());
    c.test_file = "no_such_test.h5".into();
    let e = format!("{:#}", Speech::new(Corpus::Shd, c, 0).err().unwrap());
    assert!(e.contains("no_such_test.h5") && e.contains("task.data_dir"), "{e}");
}

#[test]
fn perturbations_do_what_they_say() {
    let cache = tempfile::tempdir().unwrap();
    let task = Speech::new(Corpus::Shd, config(cache.path()), 0).unwrap();
    let spikes = |samples: &[Sample]| -> usize {
        samples
            .iter()
            .map(|s| match &s.input {
                Input::Events(e) => e.active.len(),
                Input::Dense(_) => panic!("events"),
            })
            .sum()
    };
    let clean = spikes(task.test());
    let (none, steps) = task.perturbed_test(&Perturbation::Delete(0.0), 3).unwrap();
    assert_eq!((none.as_slice(), steps), (task.test(), 50));
    let (half, _) = task.perturbed_test(&Perturbation::Delete(0.5), 3).unwrap();
    let kept = spikes(&half) as f64 / clean as f64;
    assert!((0.4..0.6).contains(&kept), "kept {kept}");
    assert_eq!(task.perturbed_test(&Perturbation::Delete(0.5), 3).unwrap().0, half, "seeded");
    assert_ne!(task.perturbed_test(&Perturbation::Delete(0.5), 4).unwrap().0, half);
    let (added, _) = task.perturbed_test(&Perturbation::Add(0.01), 3).unwrap();
    let extra = (spikes(&added) - clean) as f64 / (20.0 * 50.0 * 700.0);
    assert!((0.008..0.012).contains(&extra), "added {extra}");
    // time warp: 1 is the clean set; 2 doubles the steps
    let (same, steps) = task.perturbed_test(&Perturbation::TimeWarp(1.0), 0).unwrap();
    assert_eq!((same.as_slice(), steps), (task.test(), 50));
    let (slow, steps) = task.perturbed_test(&Perturbation::TimeWarp(2.0), 0).unwrap();
    assert_eq!(steps, 100);
    // the 0.2 s samples fit in 0.4 s whole; spikes that shared a 4 ms bin may now be apart
    assert!(spikes(&slow) >= clean, "{} < {clean}", spikes(&slow));
    assert_eq!(slow.iter().map(label).collect::<Vec<_>>(), task.test().iter().map(label).collect::<Vec<_>>());
}

#[test]
fn a_short_run_learns_the_separable_set_and_evaluates_perturbations() {
    let dir = tempfile::tempdir().unwrap();
    let config = separable_config(dir.path());
    let run = dir.path().join("run");
    hetsyn().args(["-q", "train", "--no-plots", "--config"]).arg(&config).arg("--out").arg(&run).assert().success();

    // one row per epoch, labelled figures in the summary
    let metrics = fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(metrics.as_bytes());
    let header = rows.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let records: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    let epochs: Vec<String> = records.iter().map(|r| r[col("epoch")].to_string()).collect();
    assert_eq!(epochs, ["1", "2", "3", "4", "5", "6"]);
    assert_eq!(&records[0][col("step")], "4", "30 training samples in batches of 8: 4 steps per epoch");
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let at_best = summary["test_accuracy_at_best_validation"].as_f64().unwrap();
    assert!(at_best > 0.5, "test accuracy at best validation {at_best} is not above chance (0.25)");
    assert!(summary["last_test_accuracy"].as_f64().unwrap() > 0.5);
    assert!(summary["best_test_accuracy"].as_f64().unwrap() >= at_best);
    assert_eq!(summary["epochs"].as_f64(), Some(6.0));
    assert!(summary["best_validation_epoch"].as_f64().is_some());

    // perturbed evaluations: one row per condition, seeded, checked flags
    let ckpt = run.join("checkpoints/best.safetensors");
    let csv_path = dir.path().join("eval.csv");
    let eval = |csv: &Path| {
        hetsyn()
            .args(["-q", "eval", "--checkpoint"])
            .arg(&ckpt)
            .args(["--delete-prob", "0,1", "--add-prob", "0.05", "--time-warp", "1", "--time-warp-random", "2"])
            .arg("--csv")
            .arg(csv)
            .assert()
            .success();
        fs::read_to_string(csv).unwrap()
    };
    let text = eval(&csv_path);
    let again = eval(&dir.path().join("again.csv"));
    assert_eq!(text.replace("eval.csv", ""), again.replace("again.csv", ""), "perturbations are seeded");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let conditions: Vec<&str> = rows.iter().map(|r| &r[2]).collect();
    assert_eq!(conditions.len(), 8);
    assert_eq!(&conditions[..5], ["clean", "delete_prob=0", "delete_prob=1", "add_prob=0.05", "time_warp=1"]);
    assert!(conditions[5..7].iter().all(|c| c.starts_with("time_warp=")));
    assert_eq!(conditions[7], "time_warp_random_mean");
    let accuracy = |k: usize| rows[k][5].parse::<f64>().unwrap();
    assert!((accuracy(7) - (accuracy(5) + accuracy(6)) / 2.0).abs() < 1e-12, "the mean of the random warps");
    assert_eq!(accuracy(1), accuracy(0), "deleting nothing changes nothing");
    assert_eq!(accuracy(4), accuracy(0), "a time warp of 1 changes nothing");
    assert!(accuracy(2) <= 0.5, "with every spike deleted the network cannot know the class");

    let out = hetsyn().args(["eval", "--checkpoint"]).arg(&ckpt).args(["--delete-prob", "1.5"]).assert().failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("--delete-prob 1.5"), "{err}");
}

#[test]
fn epochs_need_a_dataset_task() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dms.toml");
    fs::write(&path, common::SHORT_DMS.replace("iterations = 6", "epochs = 3")).unwrap();
    let out = hetsyn().args(["train", "--config"]).arg(&path).assert().failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("train.epochs = 3") && err.contains("fresh trials"), "{err}");
    // and the noise-rate evaluation is refused for spike data, naming the flag
    let config = separable_config(dir.path());
    let run = dir.path().join("run");
    hetsyn()
        .args(["-q", "train", "--no-plots", "--set", "train.epochs=1", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .assert()
        .success();
    let out = hetsyn()
        .args(["eval", "--noise-rates", "2", "--checkpoint"])
        .arg(run.join("checkpoints/last.safetensors"))
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("--noise-rates 2"), "{err}");
}

#[test]
fn spike_counts_run_as_their_dense_form() {
    let dir = tempfile::tempdir().unwrap();
    let path = separable_config(dir.path());
    let config = hetsyn::config::Config::load(
        &path,
        &["task.binning.binary=false".to_string(), "task.binning.bin_ms=20".to_string()],
    )
    .unwrap();
    let task = &config.build_task().unwrap();
    let shape = task.shape();
    assert_eq!(shape.steps, 10);
    let net = hetsyn::train::initial_network(&config, shape.channels, shape.outputs);
    let mut counted = 0;
    for s in task.test() {
        let Input::Events(e) = &s.input else { panic!("events") };
        counted += e.counts.as_ref().unwrap().iter().filter(|c| **c > 1).count();
        let dense = s.input.to_dense(shape.channels);
        let a = net.forward(s.input.layer_input(), shape.steps, Vec::new());
        let b = net.forward(&dense, shape.steps, Vec::new());
        assert_eq!(net.output(&a), net.output(&b));
    }
    assert!(counted > 0, "20 ms bins hold several spikes of a channel");
}

#[test]
fn shipped_configs_are_valid_and_shd_is_the_authors_run() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut count = 0;
    for entry in fs::read_dir(&configs).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            hetsyn::config::Config::load(&path, &[]).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            count += 1;
        }
    }
    assert!(count >= 11, "{count} configs");
    let c = hetsyn::config::Config::load(&configs.join("shd.toml"), &[]).unwrap();
    let m = &c.model;
    assert_eq!(m.kind, hetsyn::config::ModelKind::Hetsynlif);
    assert_eq!(m.layers.iter().map(|l| (l.size, l.recurrent)).collect::<Vec<_>>(), [(128, true), (64, true)]);
    assert_eq!((m.dt, m.threshold, m.tau_reset, m.dropout), (1e-3, 1.0, 0.02, 0.2));
    assert_eq!(m.tau_init, hetsyn::config::TauInit::Uniform { low: 0.005, high: 0.02 });
    assert_eq!(m.surrogate, hetsyn::model::Surrogate::MultiGaussian);
    assert_eq!((m.readout.loss, m.readout.skip_steps), (hetsyn::model::LossKind::SoftmaxSum, 11));
    let t = &c.train;
    assert_eq!(t.optimizer, hetsyn::config::OptimizerKind::Adamw);
    assert_eq!((t.lr, t.decay_lr, t.weight_decay, t.batch_size, t.epochs), (2e-3, 4e-3, 4e-3, 32, 100));
    assert_eq!(
        t.schedule,
        hetsyn::config::ScheduleConfig::WarmupCosine {
            span: 0,
            span_epochs: 40.0,
            warmup_fraction: 0.05,
            hold_fraction: 0.95
        }
    );
    let hetsyn::config::TaskConfig::Shd(s) = &c.task else { panic!("shd") };
    assert_eq!(s.binning, hetsyn::data::Binning::default());
    assert_eq!((s.binning.bin_ms, s.binning.duration_ms, s.binning.channels), (4.0, 1000.0, 700));
    // the sibling configs differ only in the model kind and name
    for kind in ["hetneulif", "homneulif", "homneualif"] {
        let sibling = hetsyn::config::Config::load(&configs.join(format!("shd_{kind}.toml")), &[]).unwrap();
        assert_eq!(format!("{:?}", sibling.model.kind).to_lowercase(), kind);
        assert_eq!((sibling.train, sibling.task), (c.train.clone(), c.task.clone()));
    }
}

/// `shd_authors.toml` and `smnist_authors.toml` are their siblings but for the
/// name and the validation and selection settings: every training sample, no
/// validation set, the best-on-test checkpoint saved.
#[test]
fn authors_configs_differ_from_their_siblings_only_in_validation_and_selection() {
    use hetsyn::config::{Config, TaskConfig};
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    for (authors, sibling) in [("shd_authors", "shd"), ("smnist_authors", "smnist")] {
        let mut a = Config::load(&configs.join(format!("{authors}.toml")), &[]).unwrap();
        let b = Config::load(&configs.join(format!("{sibling}.toml")), &[]).unwrap();
        assert_eq!(a.name, authors);
        assert!(a.output.save_best_on_test && !b.output.save_best_on_test, "{authors}");
        match (&mut a.task, &b.task) {
            (TaskConfig::Shd(x), TaskConfig::Shd(y)) => {
                assert_eq!(x.validation, Some(Validation::None));
                assert_eq!(y.validation, Some(Validation::Fraction));
                x.validation = y.validation;
                x.validation_fraction = y.validation_fraction;
            }
            (TaskConfig::Images(x), TaskConfig::Images(y)) => {
                assert_eq!((x.validation_size, y.validation_size), (0, 5000));
                x.validation_size = y.validation_size;
            }
            _ => panic!("{authors}: another task than {sibling}"),
        }
        a.name = b.name.clone();
        a.output.save_best_on_test = false;
        assert_eq!(a, b, "{authors}.toml differs from {sibling}.toml in more than validation and selection");
    }
}

/// With `validation = "none"` an epoch visits every sample of the train file
/// exactly once: the 36 a 10 % split trains on and the 4 it holds out.
#[test]
fn validation_none_trains_on_every_sample() {
    let cache = tempfile::tempdir().unwrap();
    let split = Speech::new(Corpus::Shd, config(cache.path()), 1).unwrap();
    let mut c = config(cache.path());
    c.validation = Some(Validation::None);
    let mut task = Speech::new(Corpus::Shd, c, 1).unwrap();
    assert!(task.validation().is_empty());
    assert_eq!(task.training().epoch_len(), Some(40));
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    // what the 10 % split trains on: 36 samples
    let mut split_task = Speech::new(Corpus::Shd, config(cache.path()), 1).unwrap();
    let trained: Vec<Sample> = (0..3).flat_map(|i| split_task.training().batch(i, 12, &mut rng)).collect();
    assert_eq!(trained.len(), 36);
    for epoch in 0..2u64 {
        // 40 samples in batches of 16: 16, 16, 8
        let batches: Vec<Vec<Sample>> = (0..3).map(|i| task.training().batch(3 * epoch + i, 16, &mut rng)).collect();
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [16, 16, 8]);
        let seen: Vec<Sample> = batches.concat();
        for s in &seen {
            assert_eq!(seen.iter().filter(|t| *t == s).count(), 1, "epoch {epoch}: a sample visited twice");
        }
        for s in split.validation() {
            assert!(seen.contains(s), "epoch {epoch}: a sample a 10 % split holds out was not trained on");
        }
        assert!(trained.iter().all(|s| seen.contains(s)), "epoch {epoch}: a training sample was left out");
    }
    // the validation fraction is not looked at
    let mut c = config(cache.path());
    c.validation = Some(Validation::None);
    c.validation_fraction = 0.0;
    assert!(Speech::new(Corpus::Shd, c, 1).is_ok());
    // and the name of the setting is checked
    let e =
        hetsyn::config::Config::from_toml(&SEPARABLE.replace("validation = \"speaker\"", "validation = \"nope\""), &[])
            .unwrap_err();
    assert!(format!("{e:#}").contains("`nope`") && format!("{e:#}").contains("`none`"), "{e:#}");
}
