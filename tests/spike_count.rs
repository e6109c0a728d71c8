//! The spike-count readout (sequential-image tasks): the readout is a spiking
//! layer and the logits are its spike counts. With smooth (sigmoid) spikes the
//! gradient of every parameter matches central finite differences of the loss,
//! for per-synapse and per-neuron decays, and the counts are what the readout
//! emitted.

use hetsyn::model::Target;
use hetsyn::model::{Activation, Decays, Dropout, Layer, LossKind, Network, Objective, Spiking};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn layer(
    rng: &mut ChaCha8Rng,
    inputs: usize,
    size: usize,
    recurrent: bool,
    per_synapse: bool,
    activation: Activation,
) -> Layer<f64> {
    let mut v = |n: usize, lo: f64, hi: f64| -> Vec<f64> { (0..n).map(|_| rng.gen_range(lo..hi)).collect() };
    let input_weight = v(size * inputs, -0.6, 1.2);
    let recurrent_weight = recurrent.then(|| v(size * size, -0.4, 0.4));
    let decays = if per_synapse {
        Decays::Synapse {
            input: v(size * inputs, 0.4, 0.95),
            recurrent: recurrent.then(|| v(size * size, 0.4, 0.95)),
            reset: 0.8,
        }
    } else {
        Decays::Neuron { rho: v(size, 0.4, 0.95), learnable: true }
    };
    let spiking = Some(Spiking { threshold: 1.0, activation, adaptation: None });
    Layer::new(inputs, size, input_weight, recurrent_weight, decays, spiking)
}

fn loss(net: &Network<f64>, samples: &[(Vec<f64>, Target)], steps: usize) -> f64 {
    let batch: Vec<(&[f64], &Target)> = samples.iter().map(|(x, t)| (&x[..], t)).collect();
    let objective = Objective { loss: LossKind::SpikeCount, skip_steps: 0, rate_regulariser: None };
    net.loss(&batch, steps, &objective, Dropout::None).loss
}

#[test]
fn spike_count_gradients_match_finite_differences() {
    for per_synapse in [true, false] {
        let mut rng = ChaCha8Rng::seed_from_u64(if per_synapse { 1 } else { 2 });
        let (inputs, hidden, outputs, steps) = (4, 5, 3, 12);
        let sigmoid = Activation::Sigmoid { beta: 3.0 };
        let net = Network::new(
            vec![
                layer(&mut rng, inputs, hidden, true, per_synapse, sigmoid),
                layer(&mut rng, hidden, outputs, false, per_synapse, sigmoid),
            ],
            1e-3,
        );
        let samples: Vec<(Vec<f64>, Target)> = (0..2)
            .map(|k| ((0..steps * inputs).map(|_| rng.gen_range(0.0..1.0)).collect(), Target::Class(k % outputs)))
            .collect();
        let batch: Vec<(&[f64], &Target)> = samples.iter().map(|(x, t)| (&x[..], t)).collect();
        let objective = Objective { loss: LossKind::SpikeCount, skip_steps: 0, rate_regulariser: None };
        let (stats, mut grad) = net.loss_and_grad(&batch, steps, &objective, Dropout::None);
        assert!(stats.loss.is_finite());
        let analytic: Vec<Vec<f64>> = grad.params_mut().into_iter().map(|g| g.to_vec()).collect();
        let mut checked = 0;
        for (k, tensor) in analytic.iter().enumerate() {
            for i in 0..tensor.len() {
                let mut plus = net.clone();
                let mut minus = net.clone();
                let h = 1e-5;
                plus.params_mut()[k][i] += h;
                minus.params_mut()[k][i] -= h;
                let fd = (loss(&plus, &samples, steps) - loss(&minus, &samples, steps)) / (2.0 * h);
                let scale = tensor.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                assert!(scale > 1e-8, "tensor {k} has no gradient: the check would be empty");
                assert!(
                    (fd - tensor[i]).abs() <= 1e-6 * fd.abs().max(tensor[i].abs()).max(1e-3 * scale),
                    "per_synapse={per_synapse} tensor {k} entry {i}: analytic {} vs finite difference {fd}",
                    tensor[i]
                );
                checked += 1;
            }
        }
        assert!(checked > 50);
    }
}

#[test]
fn the_readout_spikes_and_its_counts_are_the_logits() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let step = Activation::Step(hetsyn::model::Surrogate::Triangle);
    let readout = layer(&mut rng, 5, 2, false, true, step);
    let hidden = layer(&mut rng, 3, 5, false, true, step);
    let net = Network::new(vec![hidden, readout], 1e-3);
    let steps = 40;
    let x: Vec<f64> = (0..steps * 3).map(|_| 1.0).collect();
    let tape = net.forward(&x, steps, Vec::new());
    let spikes = net.output(&tape);
    assert!(spikes.iter().all(|z| *z == 0.0 || *z == 1.0), "the readout emits spikes");
    let counts: Vec<f64> = (0..2).map(|c| (0..steps).map(|t| spikes[t * 2 + c]).sum()).collect();
    let predicted = if counts[1] > counts[0] { 1 } else { 0 };
    let batch = [(&x[..], &Target::Class(predicted))];
    let objective = Objective { loss: LossKind::SpikeCount, skip_steps: 0, rate_regulariser: None };
    let stats = net.loss(&batch, steps, &objective, Dropout::None);
    assert!(counts.iter().sum::<f64>() > 0.0, "the test needs readout spikes");
    assert_eq!(stats.correct, 1, "prediction is the argmax of the counts {counts:?}");
}
