//! Training memory does not grow with the number of time steps beyond
//! per-neuron history (model.md §5): peak resident memory of training a
//! 700-128-20 HetSynLIF stack (batch 32) at T = 1000 is within 1.5x of T = 250.
//! Each figure comes from its own `hetsyn bench` process (peak RSS from
//! getrusage). One worker thread, so that one sample's per-neuron history is in
//! flight at a time: what grows with T is then that history and the batch's
//! input events, and an O(T x synapses) store would multiply memory by about 4.

use assert_cmd::Command;

fn peak_rss_mib(steps: usize) -> f64 {
    let out = Command::cargo_bin("hetsyn")
        .unwrap()
        .args(["bench", "--layers", "700-128-20", "--batch", "32", "--repeats", "1", "--threads", "1", "--steps"])
        .arg(steps.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().expect("bench prints a summary line");
    assert!(last.starts_with("BENCH "), "{last}");
    last.split_whitespace()
        .find_map(|f| f.strip_prefix("peak_rss_mib="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no peak_rss_mib in {last}"))
}

#[test]
fn training_memory_is_flat_in_time_steps() {
    let short = peak_rss_mib(250);
    let long = peak_rss_mib(1000);
    eprintln!("peak RSS: T=250 {short:.1} MiB, T=1000 {long:.1} MiB, ratio {:.2}", long / short);
    assert!(long <= 1.5 * short, "T=1000 takes {long:.1} MiB, more than 1.5x the {short:.1} MiB of T=250");
}

/// Every preset of `hetsyn bench` runs, and one other than SHD is followed by
/// the SHD preset and the comparison of their synapse-steps per second.
#[test]
fn bench_presets_run_and_compare_with_shd() {
    for preset in ["dms", "pattern", "smnist"] {
        let out = Command::cargo_bin("hetsyn")
            .unwrap()
            .args(["bench", "--preset", preset, "--repeats", "1", "--threads", "1", "--batch", "2", "--steps", "30"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let bench: Vec<&str> = stdout.lines().filter(|l| l.starts_with("BENCH ")).collect();
        assert_eq!(bench.len(), 2, "{stdout}");
        assert!(bench[0].ends_with(&format!("preset={preset}")) && bench[1].ends_with("preset=shd"), "{stdout}");
        assert!(bench[0].contains("train_gsyn_per_s@1="), "{stdout}");
        assert!(stdout.contains(&format!("threads 1: {preset} ")), "{stdout}");
    }
    let out = Command::cargo_bin("hetsyn").unwrap().args(["bench", "--preset", "mnist"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("expected one of shd, dms"));
}
