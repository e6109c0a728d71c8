//! Checkpoints detect their own damage (`docs/checkpoint.md`, "Integrity"): every
//! single-bit flip of a real checkpoint — in the header length, anywhere in the
//! JSON header (tensor table and metadata) and in every tensor — is refused by
//! the loader or leaves what it loads identical; checkpoints of earlier versions
//! (no checksums) load with a warning; `eval`, `train --resume`, `plot` and
//! `verify` refuse a damaged file, naming it and the tensor or the metadata.
//!
//! `HETSYN_EVERY_BIT=1 cargo test --release --test checkpoint_integrity -- --nocapture`
//! flips all eight bits of every header byte instead of one (about two minutes).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use hetsyn::checkpoint::{self, network_tensors, Checkpoint};
use hetsyn::io::checksum::{Integrity, CHECKSUMS_KEY, METADATA_CHECKSUM_KEY};
use hetsyn::io::safetensors_file::{decode, encode};

mod common;
use common::{hetsyn, SHORT_DMS};

/// Trains the short DMS run into `<dir>/run`; 6 iterations, rows at steps 3 and 6.
fn train(dir: &Path) -> PathBuf {
    let config = dir.join("c.toml");
    fs::write(&config, SHORT_DMS).unwrap();
    let run = dir.join("run");
    let out = hetsyn()
        .args(["-q", "train", "--no-progress", "--no-plots", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    run
}

/// Runs `hetsyn` with `args` and then `paths`; returns its output.
fn output(args: &[&str], paths: &[&Path]) -> Output {
    hetsyn().args(args).args(paths).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the command failed with exit status 1, without a panic; returns its stderr.
fn failure(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "expected failure: {}{err}", stdout(out));
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// The byte range of the JSON header and of each tensor's data in a safetensors file.
struct Layout {
    header: std::ops::Range<usize>,
    tensors: BTreeMap<String, std::ops::Range<usize>>,
}

fn layout(bytes: &[u8]) -> Layout {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let tensors = header
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .map(|(name, info)| {
            let offset = |i: usize| 8 + n + info["data_offsets"][i].as_u64().unwrap() as usize;
            (name.clone(), offset(0)..offset(1))
        })
        .collect();
    Layout { header: 8..8 + n, tensors }
}

/// Flips bit `bit` of byte `at` of the file.
fn flip(path: &Path, at: usize, bit: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 1 << bit;
    fs::write(path, bytes).unwrap();
}

/// Rewrites a checkpoint's metadata with `change`, keeping the stored checksums
/// as they are (bare `encode`): what damage that still parses looks like.
fn rewrite_metadata(from: &Path, to: &Path, change: impl Fn(&mut BTreeMap<String, String>)) {
    let (tensors, mut metadata) = decode(&fs::read(from).unwrap(), "original").unwrap();
    change(&mut metadata);
    fs::write(to, encode(&tensors, &metadata).unwrap()).unwrap();
}

/// A checkpoint's loaded content as bits: tensors, config, step, epoch,
/// metrics, optimizer and trainer state.
fn fingerprint(ckpt: &Checkpoint) -> String {
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let tensors: Vec<_> =
        network_tensors(&ckpt.network).into_iter().map(|t| (t.name, t.shape, bits(&t.data))).collect();
    let optimizer = ckpt.optimizer.as_ref().map(|o| {
        let (step, m, v) = (o.step, &o.m, &o.v);
        (step, m.iter().map(|x| bits(x)).collect::<Vec<_>>(), v.iter().map(|x| bits(x)).collect::<Vec<_>>())
    });
    format!(
        "{tensors:?}\n{}\n{:?}\n{} {}\n{}\n{optimizer:?}\n{:?}\n{:?}\n{:?}",
        ckpt.config.to_toml().unwrap(),
        ckpt.config,
        ckpt.step,
        ckpt.epoch,
        ckpt.metrics,
        ckpt.trainer_state,
        ckpt.integrity,
        ckpt.network
    )
}

/// Byte positions spread over `range`: its first and last byte and `inner` between.
fn spread(range: &std::ops::Range<usize>, inner: usize) -> Vec<usize> {
    let len = range.len();
    let mut at: Vec<usize> = (0..=inner + 1).map(|k| range.start + k * (len - 1) / (inner + 1)).collect();
    at.dedup();
    at
}

#[test]
fn every_single_bit_flip_is_refused_or_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let run = train(dir.path());
    let original = run.join("checkpoints/last.safetensors");
    let reference = checkpoint::load(&original).unwrap();
    assert_eq!(reference.integrity, Integrity::Verified);
    assert!(reference.optimizer.is_some() && reference.trainer_state.is_some(), "a resumable checkpoint");
    let want = fingerprint(&reference);
    // the fingerprint sees a change of one bit of a weight, of the step and of the trainer state
    let mut changed = reference.clone();
    let weight = &mut changed.network.params_mut()[0][0];
    *weight = f32::from_bits(weight.to_bits() ^ 1);
    assert_ne!(fingerprint(&changed), want);
    let mut changed = reference.clone();
    changed.step += 1;
    assert_ne!(fingerprint(&changed), want);
    let mut changed = reference.clone();
    changed.trainer_state.as_mut().unwrap().push(' ');
    assert_ne!(fingerprint(&changed), want);
    let good = fs::read(&original).unwrap();
    let layout = layout(&good);
    assert!(layout.tensors.len() >= 12, "{:?}", layout.tensors.keys());

    // (region, byte, bit, tensor whose data holds the byte)
    let mut flips: Vec<(&str, usize, u8, Option<&str>)> = Vec::new();
    for at in 0..8 {
        flips.extend((0..8).map(|bit| ("header length", at, bit, None)));
    }
    // every bit of every header byte with HETSYN_EVERY_BIT set (~56,000 loads), else one a byte
    let every_bit = std::env::var_os("HETSYN_EVERY_BIT").is_some();
    for at in layout.header.clone() {
        let bits = if every_bit { 0..8 } else { at as u8 % 8..at as u8 % 8 + 1 };
        flips.extend(bits.map(|bit| ("header", at, bit, None)));
    }
    for (name, range) in &layout.tensors {
        for at in spread(range, 6) {
            flips.extend([0, 3, 7].map(|bit| ("tensor", at, bit, Some(name.as_str()))));
        }
    }
    let covered: usize = 8 + layout.header.len() + layout.tensors.values().map(|r| r.len()).sum::<usize>();
    assert_eq!(covered, good.len(), "the regions cover the whole file");

    let path = dir.path().join("flipped.safetensors");
    let (mut refused, mut harmless) = (BTreeMap::<&str, usize>::new(), BTreeMap::<&str, usize>::new());
    let mut silent = Vec::new();
    for &(region, at, bit, tensor) in &flips {
        let mut bytes = good.clone();
        bytes[at] ^= 1 << bit;
        fs::write(&path, &bytes).unwrap();
        match checkpoint::load(&path) {
            Err(e) => {
                let e = format!("{e:#}");
                assert!(e.contains("flipped.safetensors"), "byte {at} bit {bit} ({region}): no file name in {e}");
                if let Some(name) = tensor {
                    assert!(e.contains(&format!("tensor `{name}`")), "byte {at} bit {bit} of `{name}`: {e}");
                }
                *refused.entry(region).or_default() += 1;
            }
            Ok(ckpt) if fingerprint(&ckpt) == want => *harmless.entry(region).or_default() += 1,
            Ok(_) => silent.push(format!("byte {at} bit {bit} ({region} {tensor:?})")),
        }
    }
    eprintln!(
        "{} single-bit flips of a {}-byte checkpoint ({} tensors, {}-byte header): refused {refused:?}, harmless {harmless:?}",
        flips.len(),
        good.len(),
        layout.tensors.len(),
        layout.header.len()
    );
    assert!(silent.is_empty(), "{} flips loaded a different checkpoint: {silent:?}", silent.len());
    assert_eq!(refused.values().sum::<usize>() + harmless.values().sum::<usize>(), flips.len());
    assert_eq!(refused["tensor"], flips.iter().filter(|f| f.0 == "tensor").count(), "every tensor flip is refused");
}

#[test]
fn checkpoints_without_checksums_load_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let run = train(dir.path());
    let best = run.join("checkpoints/best.safetensors");
    let old = dir.path().join("old.safetensors");
    rewrite_metadata(&best, &old, |m| {
        m.remove(CHECKSUMS_KEY).unwrap();
        m.remove(METADATA_CHECKSUM_KEY).unwrap();
    });
    let (loaded, reference) = (checkpoint::load(&old).unwrap(), checkpoint::load(&best).unwrap());
    assert_eq!(loaded.integrity, Integrity::Unchecked);
    assert_eq!(fingerprint(&loaded).replace("Unchecked", "Verified"), fingerprint(&reference));

    let out = output(&["eval", "--threads", "1", "--checkpoint"], &[&old]);
    assert!(out.status.success(), "{}", stderr(&out));
    let warnings: Vec<String> = stderr(&out).lines().filter(|l| l.contains("WARN")).map(String::from).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("old.safetensors") && warnings[0].contains("no checksums"), "{warnings:?}");
    let out = output(&["verify"], &[&old]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("unchecked") && stdout(&out).contains("old.safetensors"), "{}", stdout(&out));

    // one of the two keys without the other is damage, not an old file
    for key in [CHECKSUMS_KEY, METADATA_CHECKSUM_KEY] {
        rewrite_metadata(&best, &old, |m| drop(m.remove(key)));
        let e = format!("{:#}", checkpoint::load(&old).unwrap_err());
        assert!(e.contains("old.safetensors") && e.contains(key) && e.contains("missing"), "{e}");
    }
}

#[test]
fn damaged_checkpoints_are_refused_by_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let run = train(dir.path());
    let best = run.join("checkpoints/best.safetensors");
    let last = run.join("checkpoints/last.safetensors");
    let tensor = "hidden.0.recurrent.weight";

    // eval: a bit inside one tensor's data
    let damaged = dir.path().join("damaged.safetensors");
    fs::copy(&best, &damaged).unwrap();
    let range = layout(&fs::read(&damaged).unwrap()).tensors[tensor].clone();
    flip(&damaged, range.start + range.len() / 2, 0);
    let err = failure(&output(&["eval", "--checkpoint"], &[&damaged]));
    assert!(err.contains("damaged.safetensors") && err.contains(&format!("tensor `{tensor}`")), "{err}");

    // eval: metadata changed in ways that still parse (a step, a config value)
    type Change = Box<dyn Fn(&mut BTreeMap<String, String>)>;
    let changes: [(&str, Change); 2] = [
        ("step", Box::new(|m| drop(m.insert("step".into(), "7".into())))),
        ("config", Box::new(|m| drop(m.insert("config".into(), m["config"].replace("lr = 0.005", "lr = 0.004"))))),
    ];
    for (what, change) in changes {
        rewrite_metadata(&best, &damaged, |m| {
            let before = m.clone();
            change(m);
            assert_ne!(*m, before, "{what}: nothing changed");
        });
        let err = failure(&output(&["eval", "--checkpoint"], &[&damaged]));
        assert!(err.contains("damaged.safetensors") && err.contains("metadata") && err.contains("checksum"), "{err}");
    }

    // train --resume, plot and verify of a run with damaged checkpoints
    let range = layout(&fs::read(&last).unwrap()).tensors[&format!("adam.v.{tensor}")].clone();
    flip(&last, range.end - 1, 7);
    let err = failure(&output(&["train", "--no-progress", "--resume"], &[&run]));
    assert!(err.contains("last.safetensors") && err.contains(&format!("tensor `adam.v.{tensor}`")), "{err}");
    let range = layout(&fs::read(&best).unwrap()).tensors["readout.weight"].clone();
    flip(&best, range.start, 3);
    let err = failure(&output(&["plot"], &[&run]));
    assert!(err.contains("best.safetensors") && err.contains("tensor `readout.weight`"), "{err}");
    let out = output(&["verify"], &[&run]);
    let err = failure(&out);
    let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("ok") && lines[0].contains("metrics.csv"), "{lines:?}");
    assert!(lines[1].starts_with("FAILED") && lines[1].contains("best.safetensors: checkpoint"), "{lines:?}");
    assert!(lines[1].contains("tensor `readout.weight`"), "{lines:?}");
    assert!(lines[2].starts_with("FAILED") && lines[2].contains(&format!("tensor `adam.v.{tensor}`")), "{lines:?}");
    assert!(err.contains("2 of 3 files failed verification"), "{err}");
}

#[test]
fn verify_checks_checkpoints_against_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let run = train(dir.path());
    let out = output(&["verify"], &[dir.path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines.iter().all(|l| l.starts_with("ok ")), "{text}");
    assert!(lines[0].contains("metrics.csv: 2 rows, steps 3 to 6"), "{text}");
    assert!(lines[1].contains("best.safetensors: step "), "{text}");
    assert!(lines[2].contains("last.safetensors: step 6, epoch 6, in metrics.csv, checksums match"), "{text}");

    // a metrics row that disagrees with the checkpoint that logged it
    let metrics_path = run.join("metrics.csv");
    let metrics = fs::read_to_string(&metrics_path).unwrap();
    let (head, last_row) = metrics.trim_end().rsplit_once('\n').unwrap();
    let mut cells: Vec<&str> = last_row.split(',').collect();
    let test_loss = head.lines().next().unwrap().split(',').position(|h| h == "test_loss").unwrap();
    assert_ne!(cells[test_loss], "0.25");
    cells[test_loss] = "0.25";
    fs::write(&metrics_path, format!("{head}\n{}\n", cells.join(","))).unwrap();
    let out = output(&["verify"], &[&run]);
    failure(&out);
    assert!(
        stdout(&out).contains("last.safetensors: step 6, epoch 6: metrics.csv row of step 6 has test_loss"),
        "{}",
        stdout(&out)
    );
    // no row of the checkpoint's step
    fs::write(&metrics_path, format!("{head}\n")).unwrap();
    let out = output(&["verify"], &[&run]);
    failure(&out);
    assert!(
        stdout(&out).contains("FAILED    ") && stdout(&out).contains("no row of step 6 (last: 3)"),
        "{}",
        stdout(&out)
    );
    // a missing metrics file, and nothing to verify
    fs::remove_file(&metrics_path).unwrap();
    let out = output(&["verify"], &[&run]);
    failure(&out);
    assert!(
        stdout(&out).lines().next().unwrap().starts_with("FAILED") && stdout(&out).contains("cannot read"),
        "{}",
        stdout(&out)
    );
    let err = failure(&output(&["verify"], &[&dir.path().join("nothing")]));
    assert!(err.contains("nothing") && err.contains("no such file"), "{err}");
    let err = failure(&output(&["verify"], &[&run.join("checkpoints")]));
    assert!(err.contains("no run directory"), "{err}");
}
