//! `hetsyn bench`: seconds per training step and per inference batch, synapse-steps
//! per second and peak memory of the paper's network shapes ([`Preset`]) on random
//! input of their density: SHD (the default), DMS, pattern generation, S-MNIST.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::model_defaults;
use crate::io::atomic::peak_rss_bytes;
use crate::model::init::{self, LayerSpec, ModelKind, NetworkSpec, TauInit};
use crate::model::layer::LayerInput;
use crate::model::{
    Dropout, LossKind, Network, Objective, ParamKind, RateRegulariser, SampleSource, Surrogate, Target,
};
use crate::train::optim::{Adam, AdamConfig};

/// A network shape of the paper with its task's settings: the defaults of
/// `hetsyn bench --preset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// SHD (the authors' settings): 700-128R-64R-20, batch 32, T 250, 2 % input
    /// density, dt 1 ms, tau ~ U(5, 20) ms, softmax-sum readout, dropout 0.2.
    Shd,
    /// Delayed match-to-sample (`configs/dms.toml`): 30-100R-2, batch 32, T 210,
    /// dt 5 ms, tau ~ N(40, 4) ms, last-step readout, rate regulariser; input
    /// density 0.029 (10 noise channels at 10 Hz, 10 cue channels at 40 Hz
    /// for 40 of the 210 steps).
    Dms,
    /// Pattern generation (`configs/pattern.toml`): 100-100-1, batch 1, T 2000,
    /// dt 1 ms, tau ~ N(20, 5) ms, MSE readout, rate regulariser; input density
    /// 0.0095 (10 Hz for 75 % of the time over 2 Hz noise).
    Pattern,
    /// Sequential MNIST (`configs/smnist.toml`): 1-64R-64R-10, batch 256, T 784,
    /// one analog pixel per step, 20 % of them non-zero (MNIST: 19 %), spiking
    /// readout with the spike-count loss.
    Smnist,
}

impl Preset {
    pub const ALL: [Preset; 4] = [Preset::Shd, Preset::Dms, Preset::Pattern, Preset::Smnist];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Shd => "shd",
            Preset::Dms => "dms",
            Preset::Pattern => "pattern",
            Preset::Smnist => "smnist",
        }
    }

    pub fn parse(name: &str) -> Result<Preset> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .with_context(|| format!("--preset {name:?}: expected one of {}", Preset::ALL.map(Preset::name).join(", ")))
    }

    /// `(layers, batch, steps, density)` of the preset.
    pub fn shape(self) -> (&'static str, usize, usize, f64) {
        match self {
            Preset::Shd => ("700-128R-64R-20", 32, 250, 0.02),
            Preset::Dms => ("30-100R-2", 32, 210, 0.029),
            Preset::Pattern => ("100-100-1", 1, 2000, 0.0095),
            Preset::Smnist => ("1-64R-64R-10", 256, 784, 0.2),
        }
    }

    /// The options of the preset for `model`, with `threads`, `repeats` and `seed`.
    pub fn options(self, model: ModelKind, threads: Vec<usize>, repeats: usize, seed: u64) -> BenchOptions {
        let (layers, batch, steps, density) = self.shape();
        BenchOptions { preset: self, model, layers: layers.into(), batch, steps, density, threads, repeats, seed }
    }
}

/// What to measure: a preset's settings, with its shape possibly changed.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub preset: Preset,
    pub model: ModelKind,
    /// `inputs-hidden[R]-...-outputs`, `R` marking a recurrent layer.
    pub layers: String,
    pub batch: usize,
    pub steps: usize,
    /// Fraction of input bins holding a spike (a non-zero pixel for S-MNIST).
    pub density: f64,
    pub threads: Vec<usize>,
    /// Timed repetitions (after one warm-up); the median is reported.
    pub repeats: usize,
    pub seed: u64,
}

/// A random sample: spike events (`[step] -> active channels`), or dense analog
/// values (`[steps, channels]`, S-MNIST's pixels).
pub struct SpikeSample {
    /// Offsets into `active`, `steps + 1` entries.
    offsets: Vec<u32>,
    active: Vec<u32>,
    /// Dense values instead of events.
    dense: Option<Vec<f32>>,
    target: Target,
}

impl SpikeSample {
    /// Random spikes with the given density and a random class label.
    pub fn random(steps: usize, channels: usize, density: f64, classes: usize, rng: &mut ChaCha8Rng) -> Self {
        let mut offsets = vec![0u32];
        let mut active = Vec::new();
        for _ in 0..steps {
            for c in 0..channels {
                if rng.gen::<f64>() < density {
                    active.push(c as u32);
                }
            }
            offsets.push(active.len() as u32);
        }
        SpikeSample { offsets, active, dense: None, target: Target::Class(rng.gen_range(0..classes)) }
    }

    /// The input of a preset (analog pixels for S-MNIST) and its target (a
    /// random series for pattern generation, else a random class).
    fn of_preset(
        preset: Preset,
        steps: usize,
        channels: usize,
        density: f64,
        outputs: usize,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let mut sample = Self::random(steps, channels, density, outputs, rng);
        if preset == Preset::Smnist {
            let mut dense = vec![0.0f32; steps * channels];
            for t in 0..steps {
                for &c in &sample.active[sample.offsets[t] as usize..sample.offsets[t + 1] as usize] {
                    dense[t * channels + c as usize] = rng.gen_range(0.05f32..=1.0);
                }
            }
            sample.dense = Some(dense);
        }
        if preset == Preset::Pattern {
            sample.target = Target::Series((0..steps * outputs).map(|_| rng.gen_range(-1.0f32..1.0)).collect());
        }
        sample
    }
}

impl SampleSource<f32> for SpikeSample {
    fn input(&self) -> LayerInput<'_, f32> {
        match &self.dense {
            Some(x) => LayerInput::Dense(x),
            None => LayerInput::Spikes { offsets: &self.offsets, active: &self.active },
        }
    }
    fn target(&self) -> &Target {
        &self.target
    }
}

/// Hidden layers as `(size, recurrent)`.
pub type Hidden = Vec<(usize, bool)>;

/// Parses `700-128R-64R-20` into inputs, hidden layers and outputs.
pub fn parse_layers(spec: &str) -> Result<(usize, Hidden, usize)> {
    let parts: Vec<&str> = spec.split('-').collect();
    if parts.len() < 3 {
        bail!("--layers {spec:?}: expected inputs-hidden-...-outputs, e.g. 700-128R-64R-20");
    }
    let number = |p: &str| -> Result<usize> {
        let n: usize = p
            .trim_end_matches(['R', 'r'])
            .parse()
            .with_context(|| format!("--layers {spec:?}: {p:?} is not a layer size"))?;
        if n == 0 {
            bail!("--layers {spec:?}: a layer of size 0");
        }
        Ok(n)
    };
    let inputs = number(parts[0])?;
    let outputs = number(parts[parts.len() - 1])?;
    let hidden = parts[1..parts.len() - 1]
        .iter()
        .map(|p| Ok((number(p)?, p.ends_with(['R', 'r']))))
        .collect::<Result<Vec<_>>>()?;
    Ok((inputs, hidden, outputs))
}

/// Synapses of a network (input, recurrent and readout).
pub fn synapse_count<F: crate::model::Float>(net: &Network<F>) -> usize {
    net.params().iter().filter(|(info, _)| info.kind == ParamKind::Weight).map(|(_, w)| w.len()).sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Figures of one thread count.
#[derive(Debug, Clone)]
pub struct BenchResult {
    pub threads: usize,
    pub train_step_s: f64,
    pub inference_s: f64,
    /// Inference synapse-steps per second (all threads).
    pub synapse_steps_per_s: f64,
    /// Training synapse-steps per second (all threads).
    pub train_synapse_steps_per_s: f64,
}

/// The network and loss of a preset.
fn preset_model(options: &BenchOptions, layers: Hidden) -> (NetworkSpec, Objective, f64) {
    let shd_tau = TauInit::Uniform { low: 0.005, high: 0.02 };
    let regulariser = Some(RateRegulariser { lambda: 0.01, target_hz: 10.0 });
    // (dt, tau init, tau_reset, surrogate, loss, regulariser, dropout)
    let (dt, tau_init, tau_reset, surrogate, loss, rate_regulariser, dropout) = match options.preset {
        Preset::Shd => (1e-3, shd_tau, 0.02, Surrogate::MultiGaussian, LossKind::SoftmaxSum, None, 0.2),
        Preset::Dms => {
            let tau = TauInit::Normal { mean: 0.04, std: 0.004 };
            (5e-3, tau, 0.04, Surrogate::Triangle, LossKind::Last, regulariser, 0.0)
        }
        Preset::Pattern => {
            let tau = TauInit::Normal { mean: 0.02, std: 0.005 };
            (1e-3, tau, 0.02, Surrogate::Triangle, LossKind::Mse, regulariser, 0.0)
        }
        Preset::Smnist => (1e-3, shd_tau, 0.02, Surrogate::MultiGaussian, LossKind::SpikeCount, None, 0.0),
    };
    let spec = NetworkSpec {
        kind: options.model,
        dt,
        threshold: model_defaults::THRESHOLD,
        surrogate,
        tau_reset,
        adaptation_tau: model_defaults::ADAPTATION_TAU,
        adaptation_strength: model_defaults::ADAPTATION_STRENGTH,
        weight_scale: model_defaults::WEIGHT_SCALE,
        decay_min: model_defaults::DECAY_MIN,
        decay_max: model_defaults::DECAY_MAX,
        layers: layers.into_iter().map(|(size, recurrent)| LayerSpec { size, recurrent, tau_init }).collect(),
        readout_tau_init: tau_init,
        spiking_readout: loss == LossKind::SpikeCount,
    };
    let skip_steps = if loss == LossKind::SoftmaxSum { 11 } else { 0 };
    (spec, Objective { loss, skip_steps, rate_regulariser }, dropout)
}

/// Runs the benchmark, printing one line per thread count and a summary line.
pub fn run(options: &BenchOptions) -> Result<Vec<BenchResult>> {
    let (inputs, layers, outputs) = parse_layers(&options.layers)?;
    if options.batch == 0 || options.steps == 0 || options.repeats == 0 {
        bail!("--batch, --steps and --repeats must be at least 1");
    }
    if !(0.0..=1.0).contains(&options.density) {
        bail!("--density {}: must be in [0, 1]", options.density);
    }
    let (model, objective, dropout_p) = preset_model(options, layers);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut net: Network<f32> = init::build(&model, inputs, outputs, &mut rng);
    let samples: Vec<SpikeSample> = (0..options.batch)
        .map(|_| SpikeSample::of_preset(options.preset, options.steps, inputs, options.density, outputs, &mut rng))
        .collect();
    let synapses = synapse_count(&net);
    let synapse_steps = (synapses * options.steps * options.batch) as f64;
    println!(
        "preset {}: network {} ({:?}), {synapses} synapses, batch {}, {} steps, input density {}",
        options.preset.name(),
        options.layers,
        options.model,
        options.batch,
        options.steps,
        options.density
    );
    let sizes: Vec<usize> = net.params().iter().map(|(_, d)| d.len()).collect();
    let mut results = Vec::new();
    for &threads in &options.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .start_handler(|_| crate::model::flush_subnormals_to_zero())
            .build()
            .context("cannot start worker threads")?;
        let mut adam =
            Adam::new(AdamConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 4e-3, decoupled: true }, &sizes);
        let (train_times, infer_times) = pool.install(|| {
            let mut train_times = Vec::new();
            let mut infer_times = Vec::new();
            for r in 0..=options.repeats {
                let start = Instant::now();
                let dropout = Dropout::Random { p: dropout_p, seed: r as u64 };
                let (_, mut grad) = net.loss_and_grad(&samples, options.steps, &objective, dropout);
                let grads: Vec<&[f32]> = grad.params_mut().into_iter().map(|g| &*g).collect();
                let lrs = vec![1e-3; grads.len()];
                adam.step(&mut net.params_mut(), &grads, &lrs);
                let train = start.elapsed().as_secs_f64();
                let start = Instant::now();
                let _ = net.loss(&samples, options.steps, &objective, Dropout::None);
                let infer = start.elapsed().as_secs_f64();
                if r > 0 {
                    train_times.push(train);
                    infer_times.push(infer);
                }
            }
            (train_times, infer_times)
        });
        let (train_step_s, inference_s) = (median(train_times), median(infer_times));
        let result = BenchResult {
            threads,
            train_step_s,
            inference_s,
            synapse_steps_per_s: synapse_steps / inference_s,
            train_synapse_steps_per_s: synapse_steps / train_step_s,
        };
        println!(
            "threads {}: training step {:.4} s ({:.2} G synapse-steps/s per thread), inference batch {:.4} s ({:.2} G synapse-steps/s per thread)",
            threads,
            result.train_step_s,
            result.train_synapse_steps_per_s / 1e9 / threads as f64,
            result.inference_s,
            result.synapse_steps_per_s / 1e9 / threads as f64
        );
        results.push(result);
    }
    let peak = peak_rss_bytes() as f64 / (1024.0 * 1024.0);
    let figures: Vec<String> = results
        .iter()
        .map(|r| {
            let t = r.threads;
            format!(
                "train_s@{t}={:.4} infer_s@{t}={:.4} gsyn_per_s@{t}={:.3} train_gsyn_per_s@{t}={:.3}",
                r.train_step_s,
                r.inference_s,
                r.synapse_steps_per_s / 1e9,
                r.train_synapse_steps_per_s / 1e9
            )
        })
        .collect();
    println!(
        "BENCH model={:?} layers={} batch={} steps={} synapses={} {} peak_rss_mib={:.1} preset={}",
        options.model,
        options.layers,
        options.batch,
        options.steps,
        synapses,
        figures.join(" "),
        peak,
        options.preset.name()
    );
    Ok(results)
}

/// Runs `options` and, unless it is the SHD preset itself, the SHD preset with
/// the same model, threads and repeats, then prints both side by side in
/// synapse-steps per second per thread (the efficiency of each shape).
pub fn run_with_reference(options: &BenchOptions) -> Result<()> {
    let results = run(options)?;
    if options.preset == Preset::Shd {
        return Ok(());
    }
    let reference = Preset::Shd.options(options.model, options.threads.clone(), options.repeats, options.seed);
    let shd = run(&reference)?;
    println!("G synapse-steps/s per thread (training / inference):");
    for (r, s) in results.iter().zip(&shd) {
        let per = |v: f64, t: usize| v / 1e9 / t as f64;
        println!(
            "  threads {}: {} {:.2} / {:.2}, shd {:.2} / {:.2} ({:.0} % / {:.0} % of shd)",
            r.threads,
            options.preset.name(),
            per(r.train_synapse_steps_per_s, r.threads),
            per(r.synapse_steps_per_s, r.threads),
            per(s.train_synapse_steps_per_s, s.threads),
            per(s.synapse_steps_per_s, s.threads),
            100.0 * r.train_synapse_steps_per_s / s.train_synapse_steps_per_s,
            100.0 * r.synapse_steps_per_s / s.synapse_steps_per_s
        );
    }
    Ok(())
}
