//! SHD/SSC reading, binning and caching against the fixtures written by
//! `tests/fixtures/make_shd_fixtures.py` (h5py), whose expected values in
//! `shd_expected.json` come from numpy, including the bins of the HetSyn
//! authors' preprocessing.

use hetsyn::data::{
    bin_sample, load_binned, load_binned_traced, read_spike_file, BinnedSample, Binning, CacheOutcome, Edges,
    TimePrecision,
};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn expected() -> Value {
    serde_json::from_str(&fs::read_to_string(fixture("shd_expected.json")).unwrap()).unwrap()
}

fn pairs(b: &BinnedSample) -> Vec<(u64, u64)> {
    (0..b.steps()).flat_map(|t| b.active_at(t).iter().map(move |&c| (t as u64, u64::from(c)))).collect()
}

fn json_pairs(v: &Value) -> Vec<(u64, u64)> {
    v.as_array().unwrap().iter().map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap())).collect()
}

#[test]
fn reads_float16_and_float32_files_exactly() {
    let exp = expected();
    for (name, precision) in [
        ("shd_f16.h5", TimePrecision::F16),
        ("shd_f32.h5", TimePrecision::F32),
        ("shd_tiny_f64.h5", TimePrecision::F32),
    ] {
        let e = &exp["files"][name];
        let ds = read_spike_file(&fixture(name)).unwrap();
        let n = e["labels"].as_array().unwrap().len();
        assert_eq!(ds.samples.len(), n, "{name}");
        assert_eq!(ds.time_precision, precision, "{name}");
        assert_eq!(ds.classes as u64, e["classes"].as_u64().unwrap(), "{name}");
        let labels: Vec<u16> = e["labels"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u16).collect();
        assert_eq!(ds.labels, labels, "{name}");
        match e["speakers"].as_array() {
            Some(s) => {
                let s: Vec<u16> = s.iter().map(|x| x.as_u64().unwrap() as u16).collect();
                assert_eq!(ds.speakers.as_ref(), Some(&s), "{name}");
            }
            None => assert_eq!(ds.speakers, None, "{name}"),
        }
        for (i, sample) in ds.samples.iter().enumerate() {
            assert_eq!(sample.precision, precision);
            // The stored values exactly (float64 files are rounded to f32 by design).
            let times: Vec<f32> =
                e["times"][i].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            let units: Vec<u16> =
                e["units"][i].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u16).collect();
            assert_eq!(sample.times, times, "{name} sample {i}");
            assert_eq!(sample.units, units, "{name} sample {i}");
        }
    }
    // float16 rounding, spelled out: sample 0 stores 0.004 as 0.0040016174... and 0.996 as 0.99609375.
    let f16 = read_spike_file(&fixture("shd_f16.h5")).unwrap();
    let f32 = read_spike_file(&fixture("shd_f32.h5")).unwrap();
    assert_eq!(f16.samples[0].times[1], 1049.0 / 262_144.0); // 0.004001617431640625
    assert_eq!(f16.samples[0].times[7], 0.996_093_75);
    assert_eq!(f16.samples[0].times[8], 0.996_093_75); // 0.9961 too
    assert_eq!(f32.samples[0].times[1], 0.004f32);
    assert_eq!(f32.samples[0].times[7], 0.996f32);
    assert!(f16.samples[5].times.is_empty() && f16.samples[5].units.is_empty());
    assert_eq!(f16.classes, 20);
}

#[test]
fn binning_matches_the_authors_numpy_preprocessing() {
    let exp = expected();
    for name in ["shd_f16.h5", "shd_f32.h5", "shd_tiny_f64.h5"] {
        let e = &exp["files"][name];
        let ds = read_spike_file(&fixture(name)).unwrap();
        for (scale, bins) in e["bins"].as_object().unwrap() {
            let scale: f64 = scale.parse().unwrap();
            for (i, sample) in ds.samples.iter().enumerate() {
                let got = bin_sample(sample, &Binning::default(), scale);
                assert_eq!(got.steps(), (scale / 4e-3) as usize);
                assert_eq!(pairs(&got), json_pairs(&bins[i]), "{name}, time scale {scale}, sample {i}");
                assert!(
                    got.active_at(0).iter().all(|&c| c != 0)
                        && (0..got.steps()).all(|t| !got.active_at(t).contains(&0))
                );
            }
        }
    }
}

#[test]
fn hand_made_sample_bins_from_the_file() {
    // Sample 0 of the fixtures (see make_shd_fixtures.py), unit u -> channel 700 - u, unit 0 dropped:
    // t=0 (u5) -> step 0; 0.002 (u699) -> 1; 0.004 (u1): float16 0.0040016 -> step 1 compared in
    // float16, step 2 compared exactly; 0.0041 (u0) dropped; 0.008 (u2): 2 (as stored) / 3 (exact);
    // 0.1 (u10) -> 25; 0.5 (u350) -> 125; 0.996 (u3) -> 249 as stored (float32 0.99599999 <=
    // float32(0.996); float16 0.99609375 <= float16(0.996)); 0.9961 (u4): float16 0.99609375 -> 249,
    // float32 -> dropped; 0.998, 1.0, 1.2 dropped; 0.004 (u1) again -> deduplicated; t=0 (u0) dropped.
    let f16 = read_spike_file(&fixture("shd_f16.h5")).unwrap();
    let f32 = read_spike_file(&fixture("shd_f32.h5")).unwrap();
    let stored = Binning::default();
    let exact = Binning { edges: Edges::Exact, ..Binning::default() };
    let b = |s, binning: &Binning| pairs(&bin_sample(s, binning, 1.0));
    assert_eq!(
        b(&f16.samples[0], &stored),
        vec![(0, 695), (1, 1), (1, 699), (2, 698), (25, 690), (125, 350), (249, 696), (249, 697)]
    );
    assert_eq!(
        b(&f32.samples[0], &stored),
        vec![(0, 695), (1, 1), (1, 699), (2, 698), (25, 690), (125, 350), (249, 697)]
    );
    // Exact: float16 0.1 = 0.099975586 -> 25; float16 0.5 exact -> 125; 0.99609375 > 0.996 -> dropped.
    assert_eq!(b(&f16.samples[0], &exact), vec![(0, 695), (1, 1), (2, 699), (3, 698), (25, 690), (125, 350)]);
    // float32 0.1 = 0.100000001 > 25 * 0.004 (= 0.1 in f64) -> 26.
    assert_eq!(
        b(&f32.samples[0], &exact),
        vec![(0, 695), (1, 1), (2, 699), (3, 698), (26, 690), (125, 350), (249, 697)]
    );
    // Counts mode: the two spikes of unit 1 at 0.004 count 2.
    let counts = bin_sample(&f16.samples[0], &Binning { binary: false, ..Binning::default() }, 1.0);
    assert_eq!(counts.active_at(1), &[1, 699]);
    assert_eq!(counts.counts_at(1), Some(&[1u16, 2][..]));
}

#[test]
fn missing_dataset_and_non_hdf5_errors_name_the_file() {
    let path = fixture("shd_missing_units.h5");
    let msg = format!("{:#}", read_spike_file(&path).unwrap_err());
    assert!(msg.contains(&path.display().to_string()) && msg.contains("/spikes/units"), "{msg}");

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.h5");
    fs::write(&junk, vec![7u8; 5000]).unwrap();
    let msg = format!("{:#}", read_spike_file(&junk).unwrap_err());
    assert!(msg.contains(&junk.display().to_string()) && msg.contains("not an HDF5 file"), "{msg}");

    let absent = dir.path().join("absent.h5");
    let msg = format!("{:#}", read_spike_file(&absent).unwrap_err());
    assert!(msg.contains(&absent.display().to_string()), "{msg}");
    let msg = format!("{:#}", load_binned(&absent, &Binning::default(), dir.path()).unwrap_err());
    assert!(msg.contains(&absent.display().to_string()), "{msg}");
}

#[test]
fn units_beyond_the_channels_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture("shd_f16.h5");
    let binning = Binning { channels: 600, ..Binning::default() };
    let msg = format!("{:#}", load_binned(&path, &binning, dir.path()).unwrap_err());
    assert!(msg.contains(&path.display().to_string()) && msg.contains("sample 0 has unit 699"), "{msg}");
    let bad = Binning { bin_ms: 0.0, ..Binning::default() };
    assert!(load_binned(&path, &bad, dir.path()).is_err());
}

fn cache_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

#[test]
fn cache_is_reused_invalidated_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let src = dir.path().join("train.h5");
    fs::copy(fixture("shd_f16.h5"), &src).unwrap();
    let binning = Binning::default();

    let (first, outcome) = load_binned_traced(&src, &binning, &cache).unwrap();
    assert_eq!(outcome, CacheOutcome::Miss);
    let direct = read_spike_file(&src).unwrap();
    assert_eq!(first.len(), 24);
    assert_eq!((first.steps, first.channels, first.classes), (250, 700, 20));
    assert_eq!(first.labels, direct.labels);
    assert_eq!(first.speakers, direct.speakers);
    for (b, s) in first.samples.iter().zip(&direct.samples) {
        assert_eq!(b, &bin_sample(s, &binning, 1.0));
    }
    let files = cache_files(&cache);
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("train-") && name.ends_with(".bin"), "{name}");
    let mtime = fs::metadata(&files[0]).unwrap().modified().unwrap();
    let bytes = fs::read(&files[0]).unwrap();

    // Second load: from the cache, file untouched.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (second, outcome) = load_binned_traced(&src, &binning, &cache).unwrap();
    assert_eq!(outcome, CacheOutcome::Hit);
    assert_eq!(second, first);
    assert_eq!(fs::metadata(&files[0]).unwrap().modified().unwrap(), mtime);
    assert_eq!(fs::read(&files[0]).unwrap(), bytes);

    // Another binning: a new cache file, other data.
    let counts = Binning { binary: false, ..Binning::default() };
    let (c, outcome) = load_binned_traced(&src, &counts, &cache).unwrap();
    assert_eq!(outcome, CacheOutcome::Miss);
    assert!(c.samples.iter().all(|s| s.counts.is_some()));
    let coarse = Binning { bin_ms: 8.0, ..Binning::default() };
    let (c, outcome) = load_binned_traced(&src, &coarse, &cache).unwrap();
    assert_eq!(outcome, CacheOutcome::Miss);
    assert_eq!(c.steps, 125);
    assert_eq!(cache_files(&cache).len(), 3);
    assert_eq!(load_binned_traced(&src, &binning, &cache).unwrap().1, CacheOutcome::Hit);

    // Corrupt cache files are detected, ignored and rewritten.
    for damage in 0..3 {
        let mut bad = bytes.clone();
        match damage {
            0 => bad[bytes.len() / 2] ^= 0x01,
            1 => bad.truncate(bytes.len() - 100),
            _ => bad = b"garbage".to_vec(),
        }
        fs::write(&files[0], &bad).unwrap();
        let (again, outcome) = load_binned_traced(&src, &binning, &cache).unwrap();
        assert!(matches!(outcome, CacheOutcome::Invalid(_)), "damage {damage}: {outcome:?}");
        assert_eq!(again, first);
        assert_eq!(fs::read(&files[0]).unwrap(), bytes, "damage {damage}: cache not repaired");
        assert_eq!(load_binned_traced(&src, &binning, &cache).unwrap().1, CacheOutcome::Hit);
    }

    // A changed source misses the cache and gives the new data.
    fs::copy(fixture("shd_f32.h5"), &src).unwrap();
    let (changed, outcome) = load_binned_traced(&src, &binning, &cache).unwrap();
    assert_eq!(outcome, CacheOutcome::Miss);
    let direct = read_spike_file(&src).unwrap();
    assert_eq!(direct.time_precision, TimePrecision::F32);
    for (b, s) in changed.samples.iter().zip(&direct.samples) {
        assert_eq!(b, &bin_sample(s, &binning, 1.0));
    }
    assert_ne!(changed.samples[0], first.samples[0]); // 0.9961 is kept in float16 only
}

/// Truncated and byte-garbled versions of valid files: the reader returns
/// `Ok` or `Err`, never panics, and whatever it returns is consistent.
/// `HETSYN_FUZZ_ITERS` (default 400) garbled variants per file, `HETSYN_FUZZ_SEED` (default 7).
#[test]
fn damaged_files_never_panic() {
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let iters = env("HETSYN_FUZZ_ITERS", 400);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(env("HETSYN_FUZZ_SEED", 7));
    let (mut ok, mut err) = (0usize, 0usize);
    for name in ["shd_f16.h5", "shd_f32.h5", "shd_tiny_f64.h5"] {
        let good = fs::read(fixture(name)).unwrap();
        let mut variants: Vec<Vec<u8>> = Vec::new();
        let mut cut = 0;
        while cut < good.len() {
            variants.push(good[..cut].to_vec());
            cut += if cut < 1024 { 13 } else { 97 };
        }
        for _ in 0..iters {
            let mut bad = good.clone();
            let flips = rng.gen_range(1..=8);
            for _ in 0..flips {
                // Half of the damage goes to the first 4 KiB: superblock, object headers, B-trees.
                let end = if rng.gen_bool(0.5) { bad.len().min(4096) } else { bad.len() };
                let i = rng.gen_range(0..end);
                bad[i] = if rng.gen_bool(0.5) { rng.gen() } else { bad[i] ^ (1 << rng.gen_range(0..8)) };
            }
            variants.push(bad);
        }
        for (v, bytes) in variants.iter().enumerate() {
            let path = dir.path().join(format!("{v}-{name}"));
            fs::write(&path, bytes).unwrap();
            let result = catch_unwind(AssertUnwindSafe(|| read_spike_file(&path)));
            let result = result.unwrap_or_else(|_| panic!("read_spike_file panicked on variant {v} of {name}"));
            match result {
                Ok(ds) => {
                    ok += 1;
                    assert_eq!(ds.labels.len(), ds.samples.len());
                    for s in &ds.samples {
                        assert_eq!(s.times.len(), s.units.len());
                        assert!(s.times.iter().all(|t| t.is_finite() && *t >= 0.0));
                    }
                }
                Err(e) => {
                    err += 1;
                    assert!(format!("{e:#}").contains(&path.display().to_string()));
                }
            }
            fs::remove_file(&path).unwrap();
        }
    }
    eprintln!("damaged files: {ok} read, {err} rejected");
    assert!(err > 0);
}

/// A real (or real-sized) SHD/SSC file: `HETSYN_SHD_FILE=/path/shd_train.h5 cargo test --release
/// --test shd -- --ignored --nocapture` reads, bins and caches it twice and prints the timings.
#[test]
#[ignore = "needs HETSYN_SHD_FILE pointing at an SHD/SSC .h5 file"]
fn real_file_smoke() {
    let Some(path) = std::env::var_os("HETSYN_SHD_FILE").map(PathBuf::from) else {
        panic!("set HETSYN_SHD_FILE to an SHD/SSC .h5 file");
    };
    let dir = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let ds = read_spike_file(&path).unwrap();
    let spikes: usize = ds.samples.iter().map(|s| s.times.len()).sum();
    eprintln!(
        "read {} samples, {spikes} spikes, {} classes, speakers {}, {:?} times in {:.2?}",
        ds.samples.len(),
        ds.classes,
        ds.speakers.is_some(),
        ds.time_precision,
        t.elapsed()
    );
    let binning = Binning::default();
    for round in 0..2 {
        let t = std::time::Instant::now();
        let (b, outcome) = load_binned_traced(&path, &binning, dir.path()).unwrap();
        let events: usize = b.samples.iter().map(|s| s.active.len()).sum();
        eprintln!("load_binned #{round}: {outcome:?}, {events} active bins, {:.2?}", t.elapsed());
        assert_eq!(b.len(), ds.samples.len());
    }
    for f in cache_files(dir.path()) {
        eprintln!("cache file {} bytes", fs::metadata(f).unwrap().len());
    }
}
