//! `hetsyn bench`: seconds per training step and per inference batch, synapse-steps
//! per second and peak memory of an SHD-sized network on random SHD-like input.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::io::atomic::peak_rss_bytes;
use crate::model::init::{self, LayerSpec, ModelKind, NetworkSpec, TauInit};
use crate::model::layer::LayerInput;
use crate::model::network::{Objective, SampleSource};
use crate::model::{Dropout, LossKind, Network, Surrogate, Target};
use crate::train::optim::{Adam, AdamConfig};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub model: ModelKind,
    /// `inputs-hidden[R]-...-outputs`, `R` marking a recurrent layer.
    pub layers: String,
    pub batch: usize,
    pub steps: usize,
    /// Fraction of input bins holding a spike.
    pub density: f64,
    pub threads: Vec<usize>,
    /// Timed repetitions (after one warm-up); the median is reported.
    pub repeats: usize,
    pub seed: u64,
}

/// A sample held as spike events (`[step] -> active channels`), expanded on demand.
pub struct SpikeSample {
    /// Offsets into `active`, `steps + 1` entries.
    offsets: Vec<u32>,
    active: Vec<u32>,
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
        SpikeSample { offsets, active, target: Target::Class(rng.gen_range(0..classes)) }
    }
}

impl SampleSource<f32> for SpikeSample {
    fn input(&self) -> LayerInput<'_, f32> {
        LayerInput::Spikes { offsets: &self.offsets, active: &self.active }
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
    net.layers.iter().map(|l| l.size * l.inputs + l.recurrent_weight.as_ref().map_or(0, |u| u.len())).sum()
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
    pub synapse_steps_per_s: f64,
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
    // the authors' SHD settings
    let tau_init = TauInit::Uniform { low: 0.005, high: 0.02 };
    let model = NetworkSpec {
        kind: options.model,
        dt: 1e-3,
        threshold: 1.0,
        surrogate: Surrogate::MultiGaussian,
        tau_reset: 0.02,
        adaptation_tau: 0.5,
        adaptation_strength: 0.01,
        weight_scale: 1.0,
        decay_min: 0.0,
        decay_max: 1.0,
        layers: layers.into_iter().map(|(size, recurrent)| LayerSpec { size, recurrent, tau_init }).collect(),
        readout_tau_init: tau_init,
        spiking_readout: false,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut net: Network<f32> = init::build(&model, inputs, outputs, &mut rng);
    let samples: Vec<SpikeSample> = (0..options.batch)
        .map(|_| SpikeSample::random(options.steps, inputs, options.density, outputs, &mut rng))
        .collect();
    let objective = Objective { loss: LossKind::SoftmaxSum, skip_steps: 11, rate_regulariser: None };
    let synapses = synapse_count(&net);
    let synapse_steps = (synapses * options.steps * options.batch) as f64;
    println!(
        "network {} ({:?}), {synapses} synapses, batch {}, {} steps, input density {}",
        options.layers, options.model, options.batch, options.steps, options.density
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
                let (_, grad) = net.loss_and_grad(
                    &samples,
                    options.steps,
                    &objective,
                    Dropout::Random { p: 0.2, seed: r as u64 },
                    true,
                );
                let mut grad = grad.expect("gradient requested");
                let grads: Vec<&[f32]> = grad.params_mut().into_iter().map(|g| &*g).collect();
                let lrs = vec![1e-3; grads.len()];
                adam.step(&mut net.params_mut(), &grads, &lrs);
                let train = start.elapsed().as_secs_f64();
                let start = Instant::now();
                let _ = net.loss_and_grad(&samples, options.steps, &objective, Dropout::None, false);
                let infer = start.elapsed().as_secs_f64();
                if r > 0 {
                    train_times.push(train);
                    infer_times.push(infer);
                }
            }
            (train_times, infer_times)
        });
        let result = BenchResult {
            threads,
            train_step_s: median(train_times),
            inference_s: median(infer_times),
            synapse_steps_per_s: 0.0,
        };
        let result = BenchResult { synapse_steps_per_s: synapse_steps / result.inference_s, ..result };
        println!(
            "threads {}: training step {:.4} s, inference batch {:.4} s, inference {:.2} G synapse-steps/s ({:.2} G per thread)",
            threads,
            result.train_step_s,
            result.inference_s,
            result.synapse_steps_per_s / 1e9,
            result.synapse_steps_per_s / 1e9 / threads as f64
        );
        results.push(result);
    }
    let peak = peak_rss_bytes() as f64 / (1024.0 * 1024.0);
    let figures: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "train_s@{}={:.4} infer_s@{}={:.4} gsyn_per_s@{}={:.3}",
                r.threads,
                r.train_step_s,
                r.threads,
                r.inference_s,
                r.threads,
                r.synapse_steps_per_s / 1e9
            )
        })
        .collect();
    println!(
        "BENCH model={:?} layers={} batch={} steps={} synapses={} {} peak_rss_mib={:.1}",
        options.model,
        options.layers,
        options.batch,
        options.steps,
        synapses,
        figures.join(" "),
        peak
    );
    Ok(results)
}
