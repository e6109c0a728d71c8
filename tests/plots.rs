//! `hetsyn plot` and the plots `hetsyn train` draws: train a short DMS run, draw
//! its plots, and check every PNG (size, not blank) and SVG; refuse run
//! directories without their inputs, naming the file.

use std::fs;
use std::path::{Path, PathBuf};

mod common;
use common::{hetsyn, SHORT_DMS};

/// A short pattern-generation run (regression, `Target::Series`), two targets.
const SHORT_PATTERN: &str = r#"
name = "short-pattern"
seed = 5
[model]
kind = "hetsynlif"
dt = 0.002
surrogate = "triangle"
tau_init = { dist = "normal", mean = 0.02, std = 0.005 }
layers = [{ size = 20 }]
[model.readout]
loss = "mse"
[task]
kind = "pattern"
channels = 20
duration = 0.4
segment_duration = 0.1
repeat_starts = [0.0, 0.2]
targets = 2
frequencies = [2.5, 5.0]
validation_trials = 2
test_trials = 2
[train]
iterations = 4
batch_size = 2
eval_every = 2
"#;

const STEMS: [&str; 3] = ["learning_curves", "decay_hist", "raster"];

/// Trains the short DMS run into `<dir>/<name>` with extra arguments; returns the run directory.
fn train(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    train_config(dir, SHORT_DMS, name, extra)
}

fn train_config(dir: &Path, text: &str, name: &str, extra: &[&str]) -> PathBuf {
    let config = dir.join(format!("{name}.toml"));
    fs::write(&config, text).unwrap();
    let run = dir.join(name);
    let out =
        hetsyn().args(["-q", "train", "--config"]).arg(&config).arg("--out").arg(&run).args(extra).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    run
}

/// Decodes a PNG: `(width, height, RGB(A) bytes, bytes per pixel)`.
fn decode_png(path: &Path) -> (u32, u32, Vec<u8>, usize) {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let channels = info.color_type.samples();
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{}", path.display());
    (info.width, info.height, buf, channels)
}

/// The texts of the SVG `<run>/plots/<stem>.svg`, in order, unescaped.
fn svg_texts(run: &Path, stem: &str) -> Vec<String> {
    let path = run.join("plots").join(format!("{stem}.svg"));
    let svg = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    svg.split("<text")
        .skip(1)
        .filter_map(|t| t.split_once('>').and_then(|(_, rest)| rest.split_once("</text>")).map(|(text, _)| text))
        .map(|t| t.trim().replace("&lt;", "<").replace("&gt;", ">").replace("&apos;", "'").replace("&amp;", "&"))
        .collect()
}

/// Every figure is there as a 1200×800 PNG that is not one flat colour, and as an SVG.
fn check_plots(run: &Path, stems: &[&str]) {
    for stem in stems {
        let png = run.join("plots").join(format!("{stem}.png"));
        let (w, h, pixels, channels) = decode_png(&png);
        assert_eq!((w, h), (hetsyn::plot::WIDTH, hetsyn::plot::HEIGHT), "{}", png.display());
        assert_eq!((w, h), (1200, 800));
        let first = &pixels[..channels];
        let differing = pixels.chunks(channels).filter(|p| *p != first).count();
        // a figure has axes, text and data: well over 1 % of its pixels are not background
        assert!(differing > (w * h) as usize / 100, "{}: only {differing} pixels differ from the first", png.display());
        let mut colours: Vec<&[u8]> = pixels.chunks(channels).collect();
        colours.sort();
        colours.dedup();
        assert!(colours.len() > 10, "{}: only {} colours", png.display(), colours.len());

        let svg = run.join("plots").join(format!("{stem}.svg"));
        let text = fs::read_to_string(&svg).unwrap_or_else(|e| panic!("{}: {e}", svg.display()));
        assert!(text.contains("<svg") && text.trim_end().ends_with("</svg>"), "{}", svg.display());
        assert!(text.contains("<text"), "{}: no text", svg.display());
        // every text names the embedded font (with fallbacks), none a bare `sans-serif`
        let families: Vec<&str> = text.split("font-family=\"").skip(1).filter_map(|t| t.split('"').next()).collect();
        assert!(
            !families.is_empty() && families.iter().all(|f| *f == hetsyn::plot::FAMILY),
            "{}: {families:?}",
            svg.display()
        );
        assert!(hetsyn::plot::FAMILY.starts_with("DejaVu Sans,"));
    }
    // nothing half-written left behind
    for entry in fs::read_dir(run.join("plots")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(!name.starts_with('.'), "temp file {name} left behind");
    }
}

#[test]
fn train_draws_plots_and_plot_redraws_them() {
    let dir = tempfile::tempdir().unwrap();
    let run = train(dir.path(), "run", &[]);
    // `hetsyn train` draws them unless told not to
    check_plots(&run, &STEMS);
    // a classification task has no output series
    assert!(!run.join("plots/output.png").exists());
    // the raster: the task's channel groups and cues, the trial's class and the prediction
    let raster = svg_texts(&run, "raster");
    for label in ["left cue", "right cue", "noise", "cue 1", "cue 2"] {
        assert!(raster.iter().any(|t| t == label), "no {label:?} in {raster:?}");
    }
    let title = &raster[0];
    assert!(
        title.starts_with("spikes of test sample 0: class ")
            && title.contains("match (")
            && title.contains(", network predicts ")
            && (title.ends_with(": correct") || title.ends_with(": wrong")),
        "{title}"
    );
    // the histograms: one panel per decay tensor, each with its x label and a τ = ∞ bar
    let hist = svg_texts(&run, "decay_hist");
    for tensor in ["hidden.0.input.decay: ", "hidden.0.recurrent.decay: ", "readout.decay: "] {
        assert_eq!(hist.iter().filter(|t| t.starts_with(tensor)).count(), 1, "{tensor} in {hist:?}");
    }
    let count = |text: &str| hist.iter().filter(|t| *t == text).count();
    assert_eq!(count("time constant τ (ms), log scale"), 3, "{hist:?}");
    assert_eq!(count("τ = ∞"), 3, "{hist:?}");
    assert_eq!((count("learned"), count("initial")), (3, 3), "{hist:?}");

    fs::remove_dir_all(run.join("plots")).unwrap();
    let out = hetsyn().arg("plot").arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let listed: Vec<&str> = stdout.lines().collect();
    assert_eq!(listed.len(), 2 * STEMS.len(), "{stdout}");
    for stem in STEMS {
        for ext in ["png", "svg"] {
            let path = run.join("plots").join(format!("{stem}.{ext}"));
            assert!(listed.contains(&path.display().to_string().as_str()), "{} not listed: {stdout}", path.display());
        }
    }
    check_plots(&run, &STEMS);

    // plotting twice overwrites in place
    let again = hetsyn::plot::plot_run(&run).unwrap();
    assert_eq!(again.files.len(), 2 * STEMS.len());
    assert_eq!(again.checkpoint, run.join("checkpoints").join("best.safetensors"));
    check_plots(&run, &STEMS);
}

#[test]
fn regression_runs_get_an_output_plot() {
    let dir = tempfile::tempdir().unwrap();
    let run = train_config(dir.path(), SHORT_PATTERN, "pattern", &[]);
    // no accuracy is logged for regression: the learning curves show the losses alone
    let metrics = fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(metrics.lines().nth(1).unwrap().contains(",,"), "{metrics}");
    // the closing line (also in train.log) gives the test loss, not an empty accuracy
    let log = fs::read_to_string(run.join("train.log")).unwrap();
    let closing = log.lines().find(|l| l.contains("best on test")).unwrap_or_default();
    assert!(closing.contains("test loss") && !closing.contains("accuracy"), "{closing}");
    check_plots(&run, &["learning_curves", "decay_hist", "raster", "output"]);
    // the output has a y label and marks the two presentations of the segment
    let output = svg_texts(&run, "output");
    for label in ["readout y, target (a.u.)", "repeat 1", "repeat 2", "time (ms)"] {
        assert!(output.iter().any(|t| t == label), "no {label:?} in {output:?}");
    }
    assert!(!output.iter().any(|t| t == "repeat 3"));
    // the data behind it: per readout (2) and step (0.4 s / 2 ms), its time, target, y and window
    let csv = fs::read_to_string(run.join("plots/output.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("output,time_ms,target,y,window"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2 * 200);
    assert_eq!((rows[0][0], rows[0][1], rows[399][0], rows[399][1]), ("0", "2", "1", "400"));
    for r in &rows {
        assert!(r[2].parse::<f64>().unwrap().is_finite() && r[3].parse::<f64>().unwrap().is_finite(), "{r:?}");
    }
    let in_window = |label: &str| rows.iter().filter(|r| r[0] == "0" && r[4] == label).count();
    assert_eq!((in_window("repeat 1"), in_window("repeat 2"), in_window("")), (50, 50, 100));
    // the two targets differ (each its own cosines)
    assert!(rows[..200].iter().zip(&rows[200..]).any(|(a, b)| a[2] != b[2]));
}

/// HomNeu decays are fixed: their histograms show them alone, not learned against initial.
#[test]
fn fixed_decays_get_no_learned_versus_initial() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["homneulif", "homneualif"] {
        let run = train(dir.path(), kind, &["--set", &format!("model.kind={kind}")]);
        check_plots(&run, &STEMS);
        let hist = svg_texts(&run, "decay_hist");
        assert!(!hist.iter().any(|t| t == "learned" || t == "initial"), "{kind}: {hist:?}");
        assert_eq!(hist.iter().filter(|t| *t == "fixed (not learned)").count(), 2, "{kind}: {hist:?}");
        let captions: Vec<&String> = hist.iter().filter(|t| t.ends_with(", fixed (not learned)")).collect();
        assert_eq!(captions.len(), 2, "{kind}: hidden and readout: {hist:?}");
        assert!(captions.iter().all(|c| c.contains("all τ = 40 ms")), "{captions:?}");
    }
}

#[test]
fn no_plots_skips_them() {
    let dir = tempfile::tempdir().unwrap();
    let run = train(dir.path(), "run", &["--no-plots"]);
    assert!(run.join("metrics.csv").is_file());
    assert!(!run.join("plots").exists());
}

#[test]
fn missing_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let err = format!("{:#}", hetsyn::plot::plot_run(&empty).unwrap_err());
    assert!(err.contains(&empty.join("metrics.csv").display().to_string()), "{err}");
    assert!(!empty.join("plots").exists(), "nothing is written on error");

    // through the command line: exit status 1 and the file named
    let out = hetsyn().arg("plot").arg(&empty).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("metrics.csv") && !stderr.contains("panicked"), "{stderr}");

    // metrics but no checkpoint
    let run = dir.path().join("metrics-only");
    fs::create_dir(&run).unwrap();
    fs::write(
        run.join("metrics.csv"),
        "step,iteration,train_loss,validation_loss,test_loss,extra_column\n3,3,0.7,0.69,0.71,x\n",
    )
    .unwrap();
    let err = format!("{:#}", hetsyn::plot::plot_run(&run).unwrap_err());
    assert!(err.contains(&run.join("checkpoints").join("best.safetensors").display().to_string()), "{err}");

    // a metrics file without a step column
    fs::write(run.join("metrics.csv"), "iteration,train_loss\n3,0.7\n").unwrap();
    let err = format!("{:#}", hetsyn::plot::plot_run(&run).unwrap_err());
    assert!(err.contains("metrics.csv") && err.contains("step"), "{err}");
}

/// The "initial" histogram is of the network training started from: with
/// learning rates of 1e-30 (zero is refused), far below the resolution of f32
/// parameters, the best checkpoint is that network, bit for bit.
#[test]
fn initial_network_is_the_one_training_starts_from() {
    let dir = tempfile::tempdir().unwrap();
    let run = train(dir.path(), "frozen", &["--no-plots", "--set", "train.lr=1e-30", "--set", "train.decay_lr=1e-30"]);
    let ckpt = hetsyn::checkpoint::load(&run.join("checkpoints/best.safetensors")).unwrap();
    let rebuilt = hetsyn::train::initial_network(&ckpt.config, ckpt.network.inputs(), ckpt.network.outputs());
    assert!(rebuilt == ckpt.network, "the rebuilt initial network differs from the one trained with lr 1e-30");
    // and a run that learns moves away from it
    let moved = train(dir.path(), "moving", &["--no-plots"]);
    let ckpt = hetsyn::checkpoint::load(&moved.join("checkpoints/best.safetensors")).unwrap();
    let rebuilt = hetsyn::train::initial_network(&ckpt.config, ckpt.network.inputs(), ckpt.network.outputs());
    assert!(rebuilt != ckpt.network);
}
