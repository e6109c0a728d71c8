//! The Python example of docs/checkpoint.md ("Loading in Python") runs on a
//! fresh checkpoint, when a Python with numpy and safetensors is there
//! (`HETSYN_PYTHON`, else `python3`); skipped, saying so, otherwise.

use std::fs;
use std::path::Path;
use std::process::Command;

mod common;
use common::{hetsyn, SHORT_DMS};

/// The path the examples name, replaced by a real checkpoint.
const EXAMPLE_PATH: &str = "results/<run>/checkpoints/best.safetensors";

/// The first ```python block after `heading` in the file `doc` (repository-relative).
fn python_block(doc: &str, heading: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(doc);
    let text = fs::read_to_string(&path).unwrap();
    let after = text.split_once(heading).unwrap_or_else(|| panic!("{doc}: no {heading:?}")).1;
    let code = after.split_once("```python\n").unwrap_or_else(|| panic!("{doc}: no python block")).1;
    let code = code.split_once("```").unwrap().0;
    assert!(code.contains(EXAMPLE_PATH), "{doc}: the example no longer names {EXAMPLE_PATH}");
    code.to_string()
}

/// The Python to use, or `None` when it lacks numpy or safetensors.
fn python() -> Option<String> {
    let python = std::env::var("HETSYN_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import numpy, safetensors, tomllib"])
        .output()
        .is_ok_and(|out| out.status.success());
    ok.then_some(python)
}

/// Runs `code` with warnings as errors; returns its stdout.
fn run(python: &str, code: &str) -> String {
    let out = Command::new(python).args(["-W", "error", "-c", code]).output().unwrap();
    assert!(out.status.success(), "{}\n{code}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn python_examples_read_a_checkpoint() {
    let Some(python) = python() else {
        eprintln!("skipped: no Python with numpy, safetensors and tomllib (set HETSYN_PYTHON)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("short.toml");
    fs::write(&config, SHORT_DMS).unwrap();
    let run_dir = dir.path().join("run");
    // decays may reach 1 (tau = infinity): a large decay learning rate makes some
    let out = hetsyn()
        .args(["-q", "train", "--no-plots", "--set", "train.decay_lr=0.05", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let checkpoint = run_dir.join("checkpoints/best.safetensors");
    let ckpt = hetsyn::checkpoint::load(&checkpoint).unwrap();
    let hetsyn::model::Decays::Synapse { input, .. } = ckpt.network.layers()[0].decays() else {
        panic!("a hetsynlif layer has synapse decays")
    };
    let infinite = input.iter().filter(|d| **d >= 1.0).count();
    assert!(infinite > 0, "the examples are to meet tau = infinity");

    let path = checkpoint.to_str().unwrap();
    let example = python_block("docs/checkpoint.md", "## Loading in Python").replace(EXAMPLE_PATH, path);
    let printed = run(&python, &example);
    let want = format!("weights (20, 30): {infinite} synapses with tau = inf, median of the finite tau ");
    assert!(printed.starts_with(&want) && printed.trim_end().ends_with(" ms"), "{printed:?}, want {want:?}…");
    // +inf where decay is 1, never -inf or NaN
    let check = format!(
        "{example}\nassert not np.isnan(tau).any() and not np.isneginf(tau).any()\nprint(int(np.isposinf(tau).sum()))"
    );
    let printed = run(&python, &check);
    assert_eq!(printed.lines().last().unwrap().trim(), infinite.to_string(), "{printed:?}");
}
