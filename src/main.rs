//! `hetsyn`: the command line. Parses arguments, sets up logging and threads,
//! calls the library, and turns errors into a message and a non-zero exit code.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use hetsyn::config::Config;
use hetsyn::config::ModelKind;
use hetsyn::logging::ColorChoice;
use hetsyn::record::RecordOptions;
use hetsyn::summarize::TableOptions;
use hetsyn::train::evaluate::{self, EvalOptions};
use hetsyn::train::run::{Claim, IfExists, RunDir, Saved};
use hetsyn::train::{self, TrainOptions};

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
    /// Append a row per complete run (key values, seed, figures, wall time, commit) to a results CSV
    /// that is kept; or, with --prune, remove from a config directory the configs already recorded.
    Record(RecordArgs),
    /// Redraw the reproduction report from the kept results: its tables into the marked blocks of
    /// the report, its figures as PNG and SVG; nothing is trained.
    Report(ReportArgs),
    /// Draw the paper's figures of an experiment from its recorded CSVs (first recording new runs with --record).
    Figures(FiguresArgs),
}

#[derive(Args)]
struct ReportArgs {
    /// The results kept as data (written by `hetsyn record`).
    #[arg(long, default_value = "docs/results")]
    results: PathBuf,
    /// The documents whose `<!-- table:NAME -->` … `<!-- end -->` blocks are rewritten (repeatable).
    #[arg(long, default_values = ["docs/reproduction.md", "README.md"])]
    doc: Vec<PathBuf>,
    /// Where the figures go.
    #[arg(long, default_value = "docs/figures")]
    figures: PathBuf,
}

#[derive(Args)]
struct RecordArgs {
    /// A directory holding run directories (searched four levels deep); with --prune, a directory of configs.
    path: PathBuf,
    /// The results CSV (created with its header; rows already in it are kept, never rewritten).
    #[arg(long)]
    to: PathBuf,
    #[command(flatten)]
    options: RecordOptions,
    /// The learning-curve CSV.
    #[arg(long)]
    curves_to: Option<PathBuf>,
    /// Also keep the readout traces (plots/output.csv, written by `hetsyn plot`) of the runs that have
    /// them in this CSV, one row per readout and step.
    #[arg(long)]
    traces_to: Option<PathBuf>,
    /// Remove from PATH (a config directory) every config whose key values and seed have a row in --to.
    #[arg(long)]
    prune: bool,
}

/// The experiments `hetsyn figures` draws.
#[derive(Clone, Copy, clap::ValueEnum)]
enum FigureSet {
    /// Spiking Heidelberg Digits: deletion, time warps, synaptic time constants (Fig. 4, A4, A5).
    Shd,
}

#[derive(Args)]
struct FiguresArgs {
    /// The experiment.
    #[arg(value_enum)]
    set: FigureSet,
    /// The directory of the recorded CSVs (e.g. docs/results).
    #[arg(long)]
    results: PathBuf,
    /// First add the finished, evaluated runs below this directory that the CSVs do not hold yet.
    #[arg(long, value_name = "RUNS_DIR")]
    record: Option<PathBuf>,
    /// The `experiment` column of the rows (default: the experiment's name, e.g. shd; shd_authors for
    /// the authors' protocol); the figures are of these rows.
    #[arg(long)]
    experiment: Option<String>,
    /// Where to draw the figures (default: --results).
    #[arg(long)]
    out: Option<PathBuf>,
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
    #[command(flatten)]
    table: TableOptions,
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
    /// The paper's shape to measure: shd (700-128R-64R-20, batch 32, T 250, density
    /// 0.02), dms (30-100R-2, batch 32, T 210, density 0.029), pattern (100-100-1,
    /// batch 1, T 2000, density 0.0095) or smnist (1-64R-64R-10, batch 256, T 784,
    /// pixel density 0.2). Any preset but shd is followed by shd for comparison.
    #[arg(long, default_value = "shd")]
    preset: String,
    /// Measure the preset alone, without the SHD preset after it.
    #[arg(long)]
    no_shd: bool,
    /// Neuron model.
    #[arg(long, value_enum, default_value = "hetsynlif", hide_possible_values = true)]
    model: ModelKind,
    /// Layer sizes, inputs-hidden-...-outputs; `R` marks a recurrent layer (default: the preset's).
    #[arg(long)]
    layers: Option<String>,
    /// Samples per batch (default: the preset's).
    #[arg(long)]
    batch: Option<usize>,
    /// Time steps per sample (default: the preset's).
    #[arg(long)]
    steps: Option<usize>,
    /// Fraction of input bins with a spike (default: the preset's).
    #[arg(long)]
    density: Option<f64>,
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
    /// The run's config file (see docs/configuration.md).
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
    /// When --out holds a run: refuse it; skip it when finished (same config); also
    /// resume it when unfinished; or also move a run of another config aside and train
    /// again (rerun). Decided under the run's lock; a run in use is refused.
    #[arg(long, value_enum, value_name = "WHAT", requires = "out")]
    if_exists: Option<IfExists>,
}

#[derive(Args)]
struct EvalArgs {
    /// A checkpoint written by `hetsyn train` (e.g. results/<run>/checkpoints/best.safetensors),
    /// or a run directory: its best.safetensors, else best_on_test, else last.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Where to write the CSV (default: next to the checkpoint, `<name>.eval.csv`).
    #[arg(long)]
    csv: Option<PathBuf>,
    #[command(flatten)]
    options: EvalOptions,
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

fn run_train(args: TrainArgs, quiet: bool) -> Result<()> {
    let (config, resume) = match &args.resume {
        Some(run_dir) => RunDir::at(run_dir).resume(args.threads)?,
        None => {
            let mut overrides = args.set.clone();
            overrides.extend(args.seed.map(|seed| format!("seed={seed}")));
            overrides.extend(args.threads.map(|threads| format!("threads={threads}")));
            let path = args.config.as_ref().context("--config is required")?;
            (Config::load(path, &overrides)?, None)
        }
    };
    if args.print_config {
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    let (resume, lock) = match (args.if_exists, &args.out) {
        (Some(if_exists), Some(out)) => match RunDir::at(out).claim(&config, if_exists)? {
            Claim::Finished => {
                println!("skipped {}: finished (its summary.json is there)", out.display());
                return Ok(());
            }
            Claim::Train { lock, resume, moved_aside } => {
                if let Some(aside) = moved_aside {
                    println!("moved {} aside to {}: its config differed", out.display(), aside.display());
                }
                if let Some(ckpt) = &resume {
                    println!("resuming {} from its checkpoint of step {}", out.display(), ckpt.step);
                }
                (resume.map(|ckpt| *ckpt), Some(lock))
            }
        },
        _ => (resume, None),
    };
    hetsyn::process::init_threads(config.threads)?;
    train::interrupt::install()?;
    // the bar on a terminal; elsewhere (a file, a pipe, Slurm) one plain line per evaluation
    let progress = !quiet && !args.no_progress && std::io::stderr().is_terminal();
    let out = args.resume.as_deref().or(args.out.as_deref());
    let (run, summary) = hetsyn::process::in_pool(|| {
        train::trainer::train_into(&config, out, &TrainOptions { progress }, resume, lock)
    })?;
    let line = format!("{}: {}", run.path().display(), summary.line());
    println!("{line}");
    hetsyn::logging::line(&line);
    if !args.no_plots {
        match hetsyn::plot::plot_run(run.path()) {
            Ok(plotted) => tracing::info!(
                files = plotted.files.len(),
                dir = %run.plots().display(),
                checkpoint = %plotted.checkpoint.display(),
                "plots written"
            ),
            Err(e) => tracing::warn!("cannot draw the plots: {e:#}"),
        }
    }
    Ok(())
}

fn run_plot(args: PlotArgs) -> Result<()> {
    let plotted = hetsyn::plot::plot_run(&args.run_dir)?;
    if plotted.checkpoint != RunDir::at(&args.run_dir).checkpoint(Saved::Best) {
        tracing::info!(
            "plotted from {} (the run has no best.safetensors: no validation set, or no evaluation yet)",
            plotted.checkpoint.display()
        );
    } else {
        tracing::info!("plotted from {}", plotted.checkpoint.display());
    }
    for file in plotted.files {
        println!("{}", file.display());
    }
    Ok(())
}

fn run_record(args: RecordArgs) -> Result<()> {
    let options = args.options;
    if args.prune {
        let (removed, left) = hetsyn::record::prune_configs(&args.path, &args.to, &options)?;
        println!("{removed} configs already recorded in {} removed, {left} left", args.to.display());
    } else {
        let done = hetsyn::record::record(&args.path, &args.to, args.curves_to.as_deref(), &options)?;
        println!("{} runs recorded in {}, {} recorded before", done.added, args.to.display(), done.kept);
        if let Some(traces) = &args.traces_to {
            let done = hetsyn::record::record_traces(&args.path, traces, &options)?;
            println!("traces of {} runs recorded in {}, {} recorded before", done.added, traces.display(), done.kept);
        }
    }
    Ok(())
}

fn run_report(args: ReportArgs) -> Result<()> {
    let report = hetsyn::report::build(&args.results, &args.figures)?;
    for doc in &args.doc {
        let filled = hetsyn::report::fill_document(doc, &report.tables)?;
        println!("{} tables written into {} ({})", filled.len(), doc.display(), filled.join(", "));
    }
    for figure in report.figures.iter().filter(|f| f.extension().is_some_and(|e| e == "png")) {
        println!("{}", figure.display());
    }
    Ok(())
}

fn run_eval(args: EvalArgs) -> Result<()> {
    hetsyn::process::init_threads(args.threads)?;
    let options = args.options;
    options.perturbations()?;
    // before evaluating: a CSV that cannot be written fails now, not after the work
    let checkpoint = evaluate::checkpoint_path(&args.checkpoint)?;
    let csv_path = args.csv.unwrap_or_else(|| RunDir::eval_csv_of(&checkpoint));
    hetsyn::io::atomic::check_writable(&csv_path).context("--csv")?;
    let trained = evaluate::Trained::load(&checkpoint, None)?;
    let report = evaluate::evaluate_checkpoint(&trained, &options)?;
    for (suffix, count, total, threshold_ms) in &report.resets {
        println!("{suffix}: reset {count} of {total} learnable decays in scope with tau > {threshold_ms} ms (output.tau_threshold)");
    }
    for (k, row) in report.rows.iter().enumerate() {
        println!("{}", row.line());
        if let Some(logged) = row.logged_test_accuracy.or(row.logged_test_loss).filter(|_| k == 0) {
            println!("  logged at training: {logged}");
        }
    }
    evaluate::write_eval_csv(&csv_path, &report.rows)?;
    println!("wrote {}", csv_path.display());
    Ok(())
}

fn run_figures(args: FiguresArgs) -> Result<()> {
    let FigureSet::Shd = args.set;
    let experiment = args.experiment.unwrap_or_else(|| "shd".into());
    if experiment.is_empty() || experiment.contains([',', '"', '\n']) {
        anyhow::bail!("--experiment {experiment:?}: a name without commas, quotes or line breaks is needed");
    }
    if let Some(runs) = &args.record {
        let done = hetsyn::figures::shd::record(runs, &args.results, &experiment)
            .with_context(|| format!("--record {}", runs.display()))?;
        for run in &done.not_evaluated {
            tracing::warn!(
                "{}: no eval CSV of its reported checkpoint (run hetsyn eval first); not recorded",
                run.display()
            );
        }
        println!(
            "recorded {} runs into {} ({} recorded before)",
            done.recorded.len(),
            args.results.display(),
            done.already
        );
    }
    let out = args.out.as_deref().unwrap_or(&args.results);
    for file in hetsyn::figures::shd::draw(&args.results, out, &experiment)? {
        println!("{}", file.display());
    }
    Ok(())
}

fn run_verify(args: VerifyArgs) -> Result<()> {
    let checks = hetsyn::verify::verify(&args.path)?;
    for check in &checks {
        println!("{check}");
    }
    let failed = checks.iter().filter(|c| c.verdict == hetsyn::verify::Verdict::Failed).count();
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
    let preset = hetsyn::bench::Preset::parse(&args.preset)?;
    let defaults = preset.options(args.model, args.threads, args.repeats, args.seed);
    let options = hetsyn::bench::BenchOptions {
        layers: args.layers.unwrap_or(defaults.layers.clone()),
        batch: args.batch.unwrap_or(defaults.batch),
        steps: args.steps.unwrap_or(defaults.steps),
        density: args.density.unwrap_or(defaults.density),
        ..defaults
    };
    if args.no_shd {
        hetsyn::bench::run(&options).map(|_| ())
    } else {
        hetsyn::bench::run_with_reference(&options)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.quiet, cli.verbose, cli.color);
    hetsyn::process::tune();
    let result = match cli.command {
        Command::Train(args) => run_train(args, cli.quiet),
        Command::Eval(args) => run_eval(args),
        Command::Bench(args) => run_bench(args),
        Command::Grid(args) => run_grid(args),
        Command::Summarize(args) => {
            hetsyn::summarize::summarize(&args.results, &args.by, &args.table).map(|md| print!("{md}"))
        }
        Command::Plot(args) => run_plot(args),
        Command::Verify(args) => run_verify(args),
        Command::Record(args) => run_record(args),
        Command::Report(args) => run_report(args),
        Command::Figures(args) => run_figures(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            hetsyn::logging::line(&format!("error: {e:#}"));
            // stopped by SIGINT/SIGTERM: 128 + the signal (130, 143), as shells report it
            match e.downcast_ref::<train::interrupt::Interrupted>() {
                Some(i) => ExitCode::from(i.exit_code()),
                None => ExitCode::FAILURE,
            }
        }
    }
}
