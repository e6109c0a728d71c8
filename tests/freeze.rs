//! `model.frozen_decay_fraction`: after training steps (AdamW with weight decay,
//! so every free parameter moves), the frozen decays are bit for bit those of the
//! initial network and the others have changed; a resumed run ends identical.

use std::path::Path;

use hetsyn::config::Config;
use hetsyn::checkpoint;
use hetsyn::model::ParamKind;
use hetsyn::train::freeze::FrozenDecays;
use hetsyn::train::{initial_network, train, TrainOptions};

fn config(kind: &str, fraction: f64, iterations: u64) -> Config {
    let text = format!(
        r#"
name = "freeze"
seed = 5
[model]
kind = "{kind}"
dt = 0.005
surrogate = "triangle"
tau_reset = 0.04
tau_init = {{ dist = "normal", mean = 0.04, std = 0.004 }}
frozen_decay_fraction = {fraction}
layers = [{{ size = 12, recurrent = true }}]
[model.readout]
loss = "last"
[task]
kind = "dms"
delay = 0.1
validation_trials = 8
test_trials = 8
[train]
iterations = {iterations}
batch_size = 4
optimizer = "adamw"
weight_decay = 0.01
lr = 5e-3
decay_lr = 5e-3
eval_every = 2
"#
    );
    Config::from_toml(&text, &[]).unwrap()
}

fn last_network(run: &Path) -> hetsyn::model::Network<f32> {
    checkpoint::load(&run.join("checkpoints/last.safetensors")).unwrap().network
}

#[test]
fn frozen_decays_keep_their_initial_value() {
    for kind in ["hetsynlif", "hetneulif"] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(kind, 0.5, 4);
        train(&cfg, dir.path(), &TrainOptions::default(), None, None).unwrap();
        let learned = last_network(dir.path());
        let initial = initial_network(&cfg, learned.inputs(), learned.outputs());
        let frozen = FrozenDecays::new(&cfg, &initial);
        assert!(frozen.count() > 0, "{kind}");
        let (mut free, mut moved) = (0, 0);
        for (k, ((info, before), (_, after))) in initial.params().iter().zip(learned.params()).enumerate() {
            let set: Vec<usize> = frozen.indices(k).collect();
            if info.kind == ParamKind::Decay {
                assert_eq!(set.len(), (before.len() as f64 * 0.5).round() as usize, "{kind} {}", info.name);
            }
            for i in 0..before.len() {
                if set.binary_search(&i).is_ok() {
                    assert_eq!(before[i].to_bits(), after[i].to_bits(), "{kind} {}[{i}] is frozen", info.name);
                } else if info.kind == ParamKind::Decay {
                    free += 1;
                    moved += usize::from(before[i] != after[i]);
                }
            }
        }
        assert!(free > 0 && moved == free, "{kind}: {moved} of {free} free decays changed");
    }
}

#[test]
fn resumed_run_with_frozen_decays_is_identical() {
    let straight = tempfile::tempdir().unwrap();
    train(&config("hetsynlif", 0.4, 4), straight.path(), &TrainOptions::default(), None, None).unwrap();
    let split = tempfile::tempdir().unwrap();
    train(&config("hetsynlif", 0.4, 2), split.path(), &TrainOptions::default(), None, None).unwrap();
    let ckpt = checkpoint::load(&split.path().join("checkpoints/last.safetensors")).unwrap();
    train(&config("hetsynlif", 0.4, 4), split.path(), &TrainOptions::default(), Some(ckpt), None).unwrap();
    let bits = |run: &Path| -> Vec<u32> {
        last_network(run).params().iter().flat_map(|(_, d)| d.iter().map(|v| v.to_bits())).collect()
    };
    assert_eq!(bits(straight.path()), bits(split.path()));
}

#[test]
fn fraction_out_of_range_is_refused() {
    for bad in ["1.01", "-0.1", "nan"] {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/dms.toml")).unwrap();
        let err = Config::from_toml(&text, &[format!("model.frozen_decay_fraction={bad}")]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("model.frozen_decay_fraction") && msg.contains("[0, 1]"), "{msg}");
    }
}
