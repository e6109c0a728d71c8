//! `hetsyn`: the command line. Parses arguments, sets up logging and threads,
//! calls the library, and turns errors into a message and a non-zero exit code.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use hetsyn::config::Config;
use hetsyn::io::atomic::write_atomic;
use hetsyn::io::checkpoint;
use hetsyn::logging::ColorChoice;
use hetsyn::tasks;
use hetsyn::train::{self, TrainOptions};
use rand::{Rng, SeedableRng};

/// Spiking neural networks with heterogeneous, learnable synaptic time constants (HetSyn).
#[derive(Parser)]
#[command(name = "hetsyn", version, about, propagate_version = true)]
struct Cli {
    /// Only print errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Colour in log output: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model described by a TOML config; writes results/<run>/.
    Train(TrainArgs),
    /// Re-evaluate a saved checkpoint on its task's test set.
    Eval(EvalArgs),
    /// Write the config files of a cartesian grid over config keys.
    Grid(GridArgs),
    /// Collect the runs under a directory into summary.csv, summary.md (mean ± sd per group) and a plot.
    Summarize(SummarizeArgs),
    /// Time a training step and an inference batch of an SHD-sized network; print peak memory.
    Bench(BenchArgs),
    /// Draw a run's plots (learning curves, time constants, spike raster) into <run-dir>/plots/.
    Plot(PlotArgs),
    /// Check checkpoints against their checksums and a run's metrics.csv against its checkpoints.
    Verify(VerifyArgs),
}

#[derive(Args)]
struct VerifyArgs {
    /// A checkpoint, a run directory, or a directory of runs (searched four levels deep).
    path: PathBuf,
}

#[derive(Args)]
struct PlotArgs {
    /// A run directory written by `hetsyn train` (holds metrics.csv and checkpoints/).
    run_dir: PathBuf,
}

#[derive(Args)]
struct SummarizeArgs {
    /// A directory holding run directories (searched four levels deep).
    results: PathBuf,
    /// Config keys whose values form the groups, comma separated (e.g. model.kind,model.layers.0.recurrent).
    #[arg(long, value_delimiter = ',')]
    by: Vec<String>,
    /// Columns of the table, comma separated (summary.csv column names; default: the test and validation figures).
    #[arg(long, value_delimiter = ',')]
    metrics: Vec<String>,
    /// Add a column: the fraction of each group's runs whose first table figure is >= this (e.g. 0.9).
    #[arg(long, value_name = "VALUE")]
    success_at: Option<f64>,
    /// Also draw summary_lines.{png,svg}: figures against this --by key (numeric), one line per value of the other --by keys.
    #[arg(long, value_name = "KEY")]
    plot_x: Option<String>,
    /// The figures of that plot, comma separated (default: the first table figure).
    #[arg(long, value_delimiter = ',', value_name = "FIGURES", requires = "plot_x")]
    plot_y: Vec<String>,
}

#[derive(Args)]
struct GridArgs {
    /// The base config.
    base: PathBuf,
    /// A key and its values, e.g. --vary model.kind=hetsynlif,homneulif --vary seed=0,1,2 (repeatable).
    /// Joined keys take the same value: --vary train.lr+train.decay_lr=1e-3,5e-3.
    #[arg(long, value_name = "KEY=V1,V2,...", required = true)]
    vary: Vec<String>,
    /// Override a key in every config, not named in the file names (repeatable), e.g. --set train.iterations=300.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Directory for the config files (e.g. configs/<name>/).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct BenchArgs {
    /// Neuron model.
    #[arg(long, default_value = "hetsynlif")]
    model: String,
    /// Layer sizes, inputs-hidden-...-outputs; `R` marks a recurrent layer.
    #[arg(long, default_value = "700-128R-64R-20")]
    layers: String,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Time steps per sample.
    #[arg(long, default_value_t = 250)]
    steps: usize,
    /// Fraction of input bins with a spike.
    #[arg(long, default_value_t = 0.02)]
    density: f64,
    /// Thread counts to measure, comma separated.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Timed repetitions after one warm-up (median reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
struct TrainArgs {
    /// The run's config file (see README: config reference).
    #[arg(long, required_unless_present = "resume")]
    config: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint (a run killed
    /// before its first checkpoint starts again from its config.toml).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "out", "seed", "set"])]
    resume: Option<PathBuf>,
    /// Overrides `seed`.
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads (overrides `threads`; 0 = one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Run directory (default: <output.dir>/<name>-<UTC timestamp>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override a config key, e.g. --set model.kind=homneulif --set train.lr=1e-3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Do not draw the plots into <run-dir>/plots/ after training.
    #[arg(long)]
    no_plots: bool,
    /// Print the fully resolved config (after --set, --seed, --threads) as TOML and exit without training.
    #[arg(long)]
    print_config: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// A checkpoint written by `hetsyn train` (e.g. results/<run>/checkpoints/best.safetensors).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Where to write the CSV (default: next to the checkpoint, `<name>.eval.csv`).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Also evaluate with the task's background noise at these rates (Hz, comma separated); one CSV row each.
    #[arg(long, value_delimiter = ',')]
    noise_rates: Vec<f64>,
    /// Spike-data tasks: also evaluate with each input spike deleted with these probabilities; one row each.
    #[arg(long, value_delimiter = ',')]
    delete_prob: Vec<f64>,
    /// Spike-data tasks: also evaluate with each empty input bin set with these probabilities; one row each.
    #[arg(long, value_delimiter = ',')]
    add_prob: Vec<f64>,
    /// Spike-data tasks: also evaluate with spike times multiplied by these factors before binning.
    #[arg(long, value_delimiter = ',')]
    time_warp: Vec<f64>,
    /// Spike-data tasks: also evaluate this many time-warp factors with log2(factor) ~ U(-0.5, 0.5) (the paper: 20).
    #[arg(long, default_value_t = 0)]
    time_warp_random: usize,
    /// Seed of the perturbations and of the random time-warp factors.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also evaluate, for each condition, the network with every learnable decay whose time constant exceeds
    /// the config's output.tau_threshold reset to its initial value (rebuilt from the config's seed).
    #[arg(long)]
    reset_long_tau: bool,
}

fn init_logging(quiet: bool, verbose: u8, color: ColorChoice) {
    let level = match (quiet, verbose) {
        (true, _) => tracing::Level::ERROR,
        (false, 0) => tracing::Level::INFO,
        (false, 1) => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    hetsyn::logging::init(level, color);
}

fn init_threads(threads: usize) -> Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .start_handler(|_| hetsyn::model::flush_subnormals_to_zero())
        .build_global()
        .context("cannot start the worker threads")
}

fn run_train(args: TrainArgs, quiet: bool) -> Result<()> {
    let mut overrides = args.set.clone();
    if let Some(seed) = args.seed {
        overrides.push(format!("seed={seed}"));
    }
    if let Some(threads) = args.threads {
        overrides.push(format!("threads={threads}"));
    }
    let (config, run_dir, resume) = match &args.resume {
        Some(run_dir) => {
            let last = run_dir.join("checkpoints").join("last.safetensors");
            if last.exists() {
                let ckpt = checkpoint::load(&last)?;
                // a checkpoint copied in from another run would continue as a different model
                let saved = run_dir.join("config.toml");
                let run_config = Config::load(&saved, &[])?;
                let differences = run_config.differences(&ckpt.config)?;
                if !differences.is_empty() {
                    anyhow::bail!(
                        "--resume {}: {} was not written by this run: its config differs from {} in {}",
                        run_dir.display(),
                        last.display(),
                        saved.display(),
                        differences.join("; ")
                    );
                }
                let mut config = ckpt.config.clone();
                if let Some(threads) = args.threads {
                    config.threads = threads;
                }
                (config, Some(run_dir.clone()), Some(ckpt))
            } else {
                let path = run_dir.join("config.toml");
                if !path.exists() {
                    anyhow::bail!(
                        "--resume {}: no run there (neither {} nor {})",
                        run_dir.display(),
                        last.display(),
                        path.display()
                    );
                }
                (Config::load(&path, &overrides)?, Some(run_dir.clone()), None)
            }
        }
        None => {
            let path = args.config.as_ref().context("--config is required")?;
            let config = Config::load(path, &overrides)?;
            (config, args.out.clone(), None)
        }
    };
    if args.print_config {
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    init_threads(config.threads)?;
    // the default directory is created here, so that two runs started in the same second get two
    let (run_dir, reserved) = match run_dir {
        Some(dir) => (dir, false),
        None => (train::trainer::reserve_run_dir(&config)?, true),
    };
    train::trainer::install_signal_handlers();
    tracing::info!(run_dir = %run_dir.display(), model = ?config.model.kind, "training");
    // the bar on a terminal; elsewhere (a file, a pipe, Slurm) one plain line per evaluation
    let progress = !quiet && !args.no_progress && std::io::stderr().is_terminal();
    let summary = train::train(&config, &run_dir, &TrainOptions { progress }, resume).inspect_err(|_| {
        if reserved {
            // a run that failed before writing anything leaves no empty directory behind
            let _ = std::fs::remove_dir(&run_dir);
        }
    })?;
    let line = format!("{}: {}", run_dir.display(), summary_line(&summary));
    println!("{line}");
    hetsyn::logging::line(&line);
    if !args.no_plots {
        match hetsyn::plot::plot_run(&run_dir) {
            Ok(plotted) => tracing::info!(
                files = plotted.files.len(),
                dir = %run_dir.join("plots").display(),
                checkpoint = %plotted.checkpoint.display(),
                "plots written"
            ),
            Err(e) => tracing::warn!("cannot draw the plots: {e:#}"),
        }
    }
    Ok(())
}

/// The end-of-training line: the selected model's test figures, the last ones
/// and the best on test, each labelled with what it was selected on.
fn summary_line(summary: &train::RunSummary) -> String {
    let percent = |a: Option<f64>| a.map(|a| format!("{:.2}%", 100.0 * a)).unwrap_or_else(|| "-".into());
    let at = |step: u64, epoch: Option<f64>| match epoch {
        Some(e) => format!("epoch {e}, step {step}"),
        None => format!("step {step}"),
    };
    let selected_at = at(summary.best_validation_step, summary.best_validation_epoch);
    let selected = match (summary.selected_on.as_str(), summary.best_validation_epoch) {
        ("last", Some(_)) => format!("no validation set: selected the last epoch ({selected_at}):"),
        ("last", None) => format!("no validation set: selected the last evaluation ({selected_at}):"),
        _ => format!("at best validation ({selected_at})"),
    };
    let best_test = match summary.best_test_accuracy {
        Some(a) => percent(Some(a)),
        None => format!("loss {:.6}", summary.best_test_loss),
    };
    // regression runs have no accuracy: their figure is the test loss
    let figures = |accuracy: Option<f64>, loss: f64| match accuracy {
        Some(_) => format!("test accuracy {}, test loss {loss:.6}", percent(accuracy)),
        None => format!("test loss {loss:.6}"),
    };
    format!(
        "{selected} {}; last {}; best on test (selected on the test set) {best_test} at {}; {:.1} s",
        figures(summary.test_accuracy_at_best_validation, summary.test_loss_at_best_validation),
        figures(summary.last_test_accuracy, summary.last_test_loss),
        at(summary.best_test_step, summary.best_test_epoch),
        summary.elapsed_s
    )
}

fn run_plot(args: PlotArgs) -> Result<()> {
    let plotted = hetsyn::plot::plot_run(&args.run_dir)?;
    let fallback = plotted.checkpoint.file_name().is_some_and(|n| n == "last.safetensors");
    tracing::info!(
        "plotted from {}{}",
        plotted.checkpoint.display(),
        if fallback { " (the run has no best.safetensors: no validation set, or no evaluation yet)" } else { "" }
    );
    for file in plotted.files {
        println!("{}", file.display());
    }
    Ok(())
}

fn run_eval(args: EvalArgs) -> Result<()> {
    init_threads(args.threads)?;
    let ckpt = checkpoint::load(&args.checkpoint)?;
    let perturbations = perturbations(&args)?;
    // before evaluating: a CSV that cannot be written fails now, not after the work
    let csv_path = args.csv.clone().unwrap_or_else(|| args.checkpoint.with_extension("eval.csv"));
    hetsyn::io::atomic::check_writable(&csv_path).context("--csv")?;
    let mut configs = vec![("clean".to_string(), ckpt.config.clone())];
    for rate in &args.noise_rates {
        let mut config = ckpt.config.clone();
        config.task.set_noise_rate(*rate).with_context(|| format!("--noise-rates {rate}"))?;
        config.validate().with_context(|| format!("--noise-rates {rate}"))?;
        configs.push((format!("noise_rate={rate}"), config));
    }
    // the learned network, and with --reset-long-tau the one whose long time constants are reset
    let mut networks = vec![("", ckpt.network.clone(), None)];
    if args.reset_long_tau {
        let threshold_s = ckpt.config.output.tau_threshold;
        let initial = train::initial_network(&ckpt.config, ckpt.network.inputs(), ckpt.network.outputs());
        let mut reset = ckpt.network.clone();
        let (count, total) = train::tau_stats::reset_long_taus(&mut reset, &initial, threshold_s * 1000.0)
            .with_context(|| format!("--reset-long-tau: checkpoint {}", args.checkpoint.display()))?;
        println!(
            "reset {count} of {total} learnable decays with tau > {} ms (output.tau_threshold) to their initial value",
            threshold_s * 1000.0
        );
        networks.push(("+reset_long_tau", reset, Some(count as f64 / total.max(1) as f64)));
    }
    let mut built = Vec::new();
    for (condition, config) in &configs {
        let task = tasks::build(config)?;
        let shape = task.shape();
        if shape.channels != ckpt.network.inputs() || shape.outputs != ckpt.network.outputs() {
            anyhow::bail!(
                "checkpoint {}: the network has {} inputs and {} outputs, its task needs {} and {}",
                args.checkpoint.display(),
                ckpt.network.inputs(),
                ckpt.network.outputs(),
                shape.channels,
                shape.outputs
            );
        }
        built.push((condition.clone(), task));
    }
    let clean_task = built[0].1.as_ref();
    let mut perturbed = Vec::new();
    for perturbation in &perturbations {
        let (samples, steps) = clean_task.perturbed_test(perturbation, args.seed)?;
        perturbed.push((perturbation.to_string(), samples, steps));
    }
    // every condition: its name, task, test samples and their steps
    let conditions: Vec<(&str, &dyn tasks::Task, &[tasks::Sample], usize)> = built
        .iter()
        .map(|(name, task)| (name.as_str(), task.as_ref(), task.test(), task.shape().steps))
        .chain(perturbed.iter().map(|(name, samples, steps)| (name.as_str(), clean_task, &samples[..], *steps)))
        .collect();
    let objective = train::objective(&ckpt.config);
    let logged = |key: &str| ckpt.metrics.get(key).and_then(|v| v.as_f64());
    let mut writer = csv::Writer::from_writer(Vec::new());
    let fmt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    // the random time warps come last; their mean is one more row per network
    let random_from = conditions.len() - args.time_warp_random;
    let mut random_sums = vec![(0.0, 0.0, 0usize); networks.len()];
    let mut metric_columns = 0;
    for (k, (condition, task, samples, steps)) in conditions.iter().enumerate() {
        for (n, (suffix, network, reset_fraction)) in networks.iter().enumerate() {
            let condition = format!("{condition}{suffix}");
            let test = train::evaluate_steps(network, *task, samples, *steps, &objective);
            if k >= random_from {
                let sums = &mut random_sums[n];
                sums.0 += test.stats.loss;
                sums.1 += test.accuracy.unwrap_or(f64::NAN);
                sums.2 += test.stats.samples;
            }
            metric_columns = test.metrics.len();
            if k == 0 && n == 0 {
                let mut header: Vec<String> =
                    ["checkpoint", "step", "condition", "samples", "test_loss", "test_accuracy"]
                        .iter()
                        .map(|s| s.to_string())
                        .collect();
                header.extend(test.metrics.iter().map(|(name, _)| format!("test_{name}")));
                header.extend(["reset_fraction", "logged_test_loss", "logged_test_accuracy"].map(String::from));
                writer.write_record(&header)?;
            }
            let metrics: Vec<String> = test.metrics.iter().map(|(name, v)| format!(", {name} {v:.4}")).collect();
            println!(
                "{} [{condition}]: step {}, test loss {:.6}{}{} ({} samples)",
                args.checkpoint.display(),
                ckpt.step,
                test.stats.loss,
                test.accuracy.map(|a| format!(", test accuracy {a:.4}")).unwrap_or_default(),
                metrics.concat(),
                test.stats.samples
            );
            let mut record = vec![
                args.checkpoint.display().to_string(),
                ckpt.step.to_string(),
                condition.clone(),
                test.stats.samples.to_string(),
                test.stats.loss.to_string(),
                fmt(test.accuracy),
            ];
            record.extend(test.metrics.iter().map(|(_, v)| v.to_string()));
            record.push(fmt(*reset_fraction));
            let clean = k == 0 && n == 0;
            record.push(if clean { fmt(logged("test_loss")) } else { String::new() });
            record.push(if clean { fmt(logged("test_accuracy")) } else { String::new() });
            writer.write_record(&record)?;
            if clean {
                if let Some(l) = logged("test_accuracy").or(logged("test_loss")) {
                    println!("  logged at training: {l}");
                }
            }
        }
    }
    if args.time_warp_random > 0 {
        for ((suffix, _, reset_fraction), (loss, accuracy, samples)) in networks.iter().zip(&random_sums) {
            let count = args.time_warp_random as f64;
            let condition = format!("time_warp_random_mean{suffix}");
            println!(
                "{} [{condition}]: mean over {} random time warps: test loss {:.6}, test accuracy {:.4}",
                args.checkpoint.display(),
                args.time_warp_random,
                loss / count,
                accuracy / count
            );
            let mut record = vec![
                args.checkpoint.display().to_string(),
                ckpt.step.to_string(),
                condition,
                samples.to_string(),
                (loss / count).to_string(),
                (accuracy / count).to_string(),
            ];
            record.extend(std::iter::repeat_n(String::new(), metric_columns));
            record.extend([fmt(*reset_fraction), String::new(), String::new()]);
            writer.write_record(&record)?;
        }
    }
    write_atomic(&csv_path, &writer.into_inner().context("cannot format the CSV")?)?;
    println!("wrote {}", csv_path.display());
    Ok(())
}

/// The perturbed test conditions asked for, checked.
fn perturbations(args: &EvalArgs) -> Result<Vec<tasks::Perturbation>> {
    use tasks::Perturbation;
    let mut out = Vec::new();
    for (flag, values, make) in [
        ("--delete-prob", &args.delete_prob, Perturbation::Delete as fn(f64) -> Perturbation),
        ("--add-prob", &args.add_prob, Perturbation::Add),
    ] {
        for &p in values {
            if !(0.0..=1.0).contains(&p) {
                anyhow::bail!("{flag} {p}: a probability must be in [0, 1]");
            }
            out.push(make(p));
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let random = (0..args.time_warp_random).map(|_| 2f64.powf(rng.gen_range(-0.5..0.5)));
    for alpha in args.time_warp.iter().copied().chain(random) {
        if !(alpha.is_finite() && alpha > 0.0) {
            anyhow::bail!("--time-warp {alpha}: a time-warp factor must be a positive number");
        }
        out.push(Perturbation::TimeWarp(alpha));
    }
    Ok(out)
}

fn run_verify(args: VerifyArgs) -> Result<()> {
    let checks = hetsyn::io::verify::verify(&args.path)?;
    for check in &checks {
        println!("{check}");
    }
    let failed = checks.iter().filter(|c| c.verdict == hetsyn::io::verify::Verdict::Failed).count();
    if failed > 0 {
        anyhow::bail!("{failed} of {} files failed verification", checks.len());
    }
    Ok(())
}

fn run_grid(args: GridArgs) -> Result<()> {
    let axes = args.vary.iter().map(|v| hetsyn::grid::Axis::parse(v)).collect::<Result<Vec<_>>>()?;
    let files = hetsyn::grid::write_grid(&args.base, &axes, &args.set, &args.out)?;
    println!("wrote {} configs to {}", files.len(), args.out.display());
    Ok(())
}

fn run_bench(args: BenchArgs) -> Result<()> {
    let model = toml::Value::String(args.model.clone()).try_into().map_err(|_| {
        anyhow::anyhow!("--model {:?}: expected hetsynlif, hetneulif, homneulif or homneualif", args.model)
    })?;
    let options = hetsyn::bench::BenchOptions {
        model,
        layers: args.layers,
        batch: args.batch,
        steps: args.steps,
        density: args.density,
        threads: args.threads,
        repeats: args.repeats,
        seed: args.seed,
    };
    hetsyn::bench::run(&options)?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.quiet, cli.verbose, cli.color);
    // this thread's, and every worker thread's (see init_threads)
    hetsyn::model::flush_subnormals_to_zero();
    let result = match cli.command {
        Command::Train(args) => run_train(args, cli.quiet),
        Command::Eval(args) => run_eval(args),
        Command::Bench(args) => run_bench(args),
        Command::Grid(args) => run_grid(args),
        Command::Summarize(args) => {
            let table = hetsyn::summarize::TableOptions {
                metrics: args.metrics,
                success_at: args.success_at,
                plot_x: args.plot_x,
                plot_y: args.plot_y,
            };
            hetsyn::summarize::summarize(&args.results, &args.by, &table).map(|md| print!("{md}"))
        }
        Command::Plot(args) => run_plot(args),
        Command::Verify(args) => run_verify(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            hetsyn::logging::line(&format!("error: {e:#}"));
            // stopped by SIGINT/SIGTERM: 128 + the signal (130, 143), as shells report it
            match e.downcast_ref::<train::trainer::Interrupted>() {
                Some(i) if (1..128).contains(&i.signal) => ExitCode::from(128 + i.signal as u8),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
