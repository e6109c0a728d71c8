//! One layer of the network (model.md §1–§2, §5): a hidden layer of spiking
//! neurons or the leaky readout, with per-synapse (HetSyn) or per-neuron
//! (collapsed) decays. The model kind is data: one forward step and one reverse
//! sweep serve all four models and the readout.

use super::activation::Activation;
use super::kernels::{
    active_indices, add_input, append_active_indices, axpy, decay_row, lane_sum, sparse_dot, synapse_row_backward,
    synapse_row_backward_steps, synapse_row_forward, Isa, Portable,
};
use super::Float;

/// How the currents of a layer decay.
#[derive(Debug, Clone, PartialEq)]
pub enum Decays<F> {
    /// HetSynLIF: every synapse has its own current and decay,
    /// `I_ji^t = r_ji I_ji^{t-1} + w_ji x_i^t`, `R_jk^t = q_jk R_jk^{t-1} + u_jk z_k^{t-1}`;
    /// the reset current decays with the fixed `reset` (kappa):
    /// `J_j^t = kappa J_j^{t-1} + theta z_j^{t-1}`.
    Synapse {
        /// `r_ji`, `[size, inputs]`
        input: Vec<F>,
        /// `q_jk`, `[size, size]` (recurrent layers only)
        recurrent: Option<Vec<F>>,
        /// `kappa` (unused by the readout)
        reset: F,
    },
    /// Neuron-level models in the collapsed form (model.md §2): one state per neuron,
    /// `S_j^t = rho_j S_j^{t-1} + sum_i w_ji x_i^t + sum_k u_jk z_k^{t-1} - theta z_j^{t-1}`.
    /// `rho` has one entry per neuron; all equal and fixed for HomNeu models.
    Neuron { rho: Vec<F>, learnable: bool },
}

/// Spike-frequency adaptation current (HomNeuALIF): `A_j^t = rho_a A_j^{t-1} + a z_j^{t-1}`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adaptation<F> {
    /// `rho_a`
    pub decay: F,
    /// `a`
    pub strength: F,
}

/// What makes a layer spike: `z_j^t = H(V_j^t - theta)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spiking<F> {
    pub threshold: F,
    pub activation: Activation,
    pub adaptation: Option<Adaptation<F>>,
}

/// A layer: hidden (`spiking` is `Some`) or the leaky readout (`None`, output `y^t = V^t`).
#[derive(Debug, Clone, PartialEq)]
pub struct Layer<F> {
    pub inputs: usize,
    pub size: usize,
    /// `w_ji`, `[size, inputs]`
    pub input_weight: Vec<F>,
    /// `u_jk`, `[size, size]`, recurrent layers only
    pub recurrent_weight: Option<Vec<F>>,
    pub decays: Decays<F>,
    pub spiking: Option<Spiking<F>>,
}

/// The input of a layer over all steps.
#[derive(Debug, Clone, Copy)]
pub enum LayerInput<'a, F> {
    /// `[steps, inputs]`, time-major.
    Dense(&'a [F]),
    /// Binary spikes held as events: the inputs active (value 1) at step `t` are
    /// `active[offsets[t]..offsets[t + 1]]`.
    Spikes { offsets: &'a [u32], active: &'a [u32] },
    /// Spike counts held as events: input `active[k]` has value `counts[k]` at
    /// the step `t` with `offsets[t] <= k < offsets[t + 1]`.
    Counts { offsets: &'a [u32], active: &'a [u32], counts: &'a [u16] },
}

impl<'a, F> From<&'a [F]> for LayerInput<'a, F> {
    fn from(x: &'a [F]) -> Self {
        LayerInput::Dense(x)
    }
}

impl<'a, F> From<&'a Vec<F>> for LayerInput<'a, F> {
    fn from(x: &'a Vec<F>) -> Self {
        LayerInput::Dense(x)
    }
}

/// A [`LayerInput`] with random access to each step: the row of values and the
/// indices of its non-zero entries. Spike events read as a row of ones, of which
/// only the active entries are ever used.
struct StepInputs<'a, F> {
    rows: Rows<'a, F>,
    width: usize,
    /// `active[offsets[t]..offsets[t + 1]]` are the non-zero inputs of step `t`.
    offsets: Vec<usize>,
    active: Vec<usize>,
}

enum Rows<'a, F> {
    Dense(&'a [F]),
    /// Spike counts expanded to `[steps, inputs]`.
    Owned(Vec<F>),
    Ones(Vec<F>),
}

impl<'a, F: Float> StepInputs<'a, F> {
    fn new(input: LayerInput<'a, F>, steps: usize, width: usize) -> Self {
        let mut offsets = Vec::with_capacity(steps + 1);
        offsets.push(0);
        let mut active = Vec::new();
        let rows = match input {
            LayerInput::Dense(x) => {
                assert_eq!(x.len(), steps * width, "layer input must be [steps, inputs]");
                for row in x.chunks_exact(width.max(1)).take(steps) {
                    append_active_indices(row, &mut active);
                    offsets.push(active.len());
                }
                offsets.resize(steps + 1, active.len());
                Rows::Dense(x)
            }
            LayerInput::Spikes { offsets: spike_offsets, active: spikes } => {
                Self::collect_events(spike_offsets, spikes, steps, width, &mut offsets, &mut active);
                Rows::Ones(vec![F::one(); width])
            }
            LayerInput::Counts { offsets: spike_offsets, active: spikes, counts } => {
                assert_eq!(counts.len(), spikes.len(), "spike counts must parallel the active inputs");
                Self::collect_events(spike_offsets, spikes, steps, width, &mut offsets, &mut active);
                let mut rows = vec![F::zero(); steps * width];
                for t in 0..steps {
                    for k in spike_offsets[t] as usize..spike_offsets[t + 1] as usize {
                        rows[t * width + spikes[k] as usize] = F::of(f64::from(counts[k]));
                    }
                }
                Rows::Owned(rows)
            }
        };
        StepInputs { rows, width, offsets, active }
    }

    /// Appends the events of steps `0..steps` to `active`, one offset per step.
    fn collect_events(
        spike_offsets: &[u32],
        spikes: &[u32],
        steps: usize,
        width: usize,
        offsets: &mut Vec<usize>,
        active: &mut Vec<usize>,
    ) {
        assert!(spike_offsets.len() > steps, "spike input must have steps + 1 offsets");
        for t in 0..steps {
            for &i in &spikes[spike_offsets[t] as usize..spike_offsets[t + 1] as usize] {
                assert!((i as usize) < width, "spike input channel {i} out of range");
                active.push(i as usize);
            }
            offsets.push(active.len());
        }
    }

    /// Row `t` and its active (non-zero) entries.
    #[inline(always)]
    fn at(&self, t: usize) -> (&[F], &[usize]) {
        let active = &self.active[self.offsets[t]..self.offsets[t + 1]];
        match &self.rows {
            Rows::Dense(x) => (&x[t * self.width..(t + 1) * self.width], active),
            Rows::Owned(x) => (&x[t * self.width..(t + 1) * self.width], active),
            Rows::Ones(ones) => (ones, active),
        }
    }
}

/// What the forward pass of one sample keeps of a layer: per-neuron history only.
#[derive(Debug, Clone, Default)]
pub struct LayerTape<F> {
    /// `V^t`, `[steps, size]` (the readout's output `y^t`)
    pub potential: Vec<F>,
    /// `z^t`, `[steps, size]` (spiking layers only)
    pub spikes: Vec<F>,
    /// `S^t` of the collapsed form, `[steps, size]` (learnable per-neuron decays only)
    pub membrane: Vec<F>,
}

impl<F: Float> Layer<F> {
    pub fn is_recurrent(&self) -> bool {
        self.recurrent_weight.is_some()
    }

    /// A layer of the same shape with every number zero (gradient accumulator).
    pub fn zeros_like(&self) -> Self {
        let zero = |v: &Vec<F>| vec![F::zero(); v.len()];
        Layer {
            inputs: self.inputs,
            size: self.size,
            input_weight: zero(&self.input_weight),
            recurrent_weight: self.recurrent_weight.as_ref().map(zero),
            decays: match &self.decays {
                Decays::Synapse { input, recurrent, .. } => {
                    Decays::Synapse { input: zero(input), recurrent: recurrent.as_ref().map(zero), reset: F::zero() }
                }
                Decays::Neuron { rho, learnable } => Decays::Neuron { rho: zero(rho), learnable: *learnable },
            },
            spiking: self.spiking,
        }
    }

    /// Runs the layer over `steps` steps of `input` (`[steps, inputs]`), filling `tape`
    /// (model.md §1): `V_j^t = sum_i I_ji^t + sum_k R_jk^t - J_j^t - A_j^t`, or in the
    /// collapsed form `V_j^t = S_j^t - A_j^t`; `z_j^t = H(V_j^t - theta)`.
    pub fn forward(&self, input: LayerInput<'_, F>, steps: usize, tape: &mut LayerTape<F>) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the features the function is compiled for.
                return unsafe { simd::forward_avx512(self, input, steps, tape) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: as above.
                return unsafe { simd::forward_avx2(self, input, steps, tape) };
            }
        }
        self.forward_body(Portable, input, steps, tape)
    }

    /// The body of [`Layer::forward`], compiled once per instruction set.
    #[inline(always)]
    fn forward_body<I: Isa>(&self, isa: I, input: LayerInput<'_, F>, steps: usize, tape: &mut LayerTape<F>) {
        let (n, m) = (self.size, self.inputs);
        let inputs = StepInputs::new(input, steps, m);
        tape.potential.clear();
        tape.potential.resize(steps * n, F::zero());
        tape.spikes.clear();
        if self.spiking.is_some() {
            tape.spikes.resize(steps * n, F::zero());
        }
        let keep_membrane = matches!(self.decays, Decays::Neuron { learnable: true, .. });
        tape.membrane.clear();
        if keep_membrane {
            tape.membrane.resize(steps * n, F::zero());
        }

        let zeros = vec![F::zero(); n];
        // Input synapses do not depend on the layer's own spikes: their summed
        // currents are swept one neuron at a time over all steps, with that
        // neuron's row of currents staying in the L1 cache. One pass per step
        // sums `I^{t-1}` (lane order of `decay_row`) while decaying it; then the
        // active inputs add `w_i x_i^t`.
        let mut input_drive = Vec::new();
        let mut current_rec = Vec::new();
        if let Decays::Synapse { input: r, recurrent, .. } = &self.decays {
            input_drive = vec![F::zero(); steps * n];
            let mut current = vec![F::zero(); m];
            for j in 0..n {
                let row = j * m..(j + 1) * m;
                let (weight, decay) = (&self.input_weight[row.clone()], &r[row]);
                current.fill(F::zero());
                for t in 0..steps {
                    if t > 0 {
                        input_drive[(t - 1) * n + j] = decay_row::<F, I, true>(isa, decay, &mut current);
                    }
                    let (x, active) = inputs.at(t);
                    add_input(weight, x, active, &mut current);
                }
                if steps > 0 {
                    input_drive[(steps - 1) * n + j] = lane_sum(&current);
                }
            }
            if recurrent.is_some() {
                current_rec = vec![F::zero(); n * n];
            }
        }
        // per-neuron states: reset current J (HetSyn) or collapsed S; adaptation A
        let mut neuron_state = vec![F::zero(); n];
        let mut adaptation_current = vec![F::zero(); n];
        let mut active = Vec::with_capacity(n);

        for t in 0..steps {
            let (x, x_active) = inputs.at(t);
            let split = (t * n).min(tape.spikes.len());
            let (past, now) = tape.spikes.split_at_mut(split);
            let z_prev: &[F] = if t == 0 || past.is_empty() { &zeros } else { &past[(t - 1) * n..] };
            let v = &mut tape.potential[t * n..(t + 1) * n];
            let theta = self.spiking.map(|s| s.threshold);

            match &self.decays {
                Decays::Synapse { recurrent: q, reset: kappa, .. } => {
                    v.copy_from_slice(&input_drive[t * n..(t + 1) * n]);
                    if let (Some(u), Some(q)) = (&self.recurrent_weight, q) {
                        active_indices(z_prev, &mut active);
                        for j in 0..n {
                            let row = j * n..(j + 1) * n;
                            v[j] += synapse_row_forward(
                                isa,
                                &u[row.clone()],
                                &q[row.clone()],
                                z_prev,
                                &active,
                                &mut current_rec[row],
                            );
                        }
                    }
                    if let Some(theta) = theta {
                        for j in 0..n {
                            neuron_state[j] = *kappa * neuron_state[j] + theta * z_prev[j];
                            v[j] -= neuron_state[j];
                        }
                    }
                }
                Decays::Neuron { rho, .. } => {
                    for j in 0..n {
                        neuron_state[j] =
                            rho[j] * neuron_state[j] + sparse_dot(&self.input_weight[j * m..(j + 1) * m], x, x_active);
                    }
                    if let Some(u) = &self.recurrent_weight {
                        active_indices(z_prev, &mut active);
                        for j in 0..n {
                            neuron_state[j] += sparse_dot(&u[j * n..(j + 1) * n], z_prev, &active);
                        }
                    }
                    if let Some(theta) = theta {
                        for j in 0..n {
                            neuron_state[j] -= theta * z_prev[j];
                        }
                    }
                    v.copy_from_slice(&neuron_state);
                    if keep_membrane {
                        tape.membrane[t * n..(t + 1) * n].copy_from_slice(&neuron_state);
                    }
                }
            }

            if let Some(spiking) = &self.spiking {
                if let Some(adaptation) = spiking.adaptation {
                    for j in 0..n {
                        adaptation_current[j] =
                            adaptation.decay * adaptation_current[j] + adaptation.strength * z_prev[j];
                        v[j] -= adaptation_current[j];
                    }
                }
                spiking.activation.outputs(v, spiking.threshold.f64(), &mut now[..n]);
            }
        }
    }

    /// The reverse sweep of model.md §5 for one sample, `t = steps-1 .. 0`.
    ///
    /// `d_output` is `dL/dz^t` from the layer above (or `dL/dy^t` for the readout),
    /// `[steps, size]`; `rate_grad` a per-neuron `dL/dz_j^t` constant over time
    /// (the firing-rate regulariser). With `g_j^t = Z_j^t sigma'(V_j^t - theta)`:
    ///
    /// ```text
    /// lam_ji^t = g_j^t + r_ji lam_ji^{t+1},   K_ji^t = lam_ji^{t+1} + r_ji K_ji^{t+1}
    /// dL/dw_ji += x_i^t lam_ji^t,             dL/dr_ji += w_ji x_i^t K_ji^t
    /// dL/dx_i^t = sum_j w_ji lam_ji^t
    /// ```
    ///
    /// `sum_t x^t K^t` equals `sum_t g^t P^t` of a forward re-sweep (model.md §5.4,
    /// `P^t = dE^t/dr`), so no state is rebuilt by division and no second sweep is
    /// needed. The decay gradients are accumulated without the factor `w_ji`;
    /// [`Layer::finish_gradient`] applies it once per batch.
    /// The collapsed form uses per-neuron adjoints `mu_j^t = g_j^t + rho_j mu_j^{t+1}`.
    /// `d_input` (`[steps, inputs]`), when given, receives `dL/dx^t`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        input: LayerInput<'_, F>,
        steps: usize,
        tape: &LayerTape<F>,
        d_output: &[F],
        rate_grad: Option<&[F]>,
        grad: &mut Layer<F>,
        d_input: Option<&mut [F]>,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the features the function is compiled for.
                return unsafe { simd::backward_avx512(self, input, steps, tape, d_output, rate_grad, grad, d_input) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: as above.
                return unsafe { simd::backward_avx2(self, input, steps, tape, d_output, rate_grad, grad, d_input) };
            }
        }
        self.backward_body(input, steps, tape, d_output, rate_grad, grad, d_input)
    }

    /// The body of [`Layer::backward`], compiled once per instruction set.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn backward_body(
        &self,
        input: LayerInput<'_, F>,
        steps: usize,
        tape: &LayerTape<F>,
        d_output: &[F],
        rate_grad: Option<&[F]>,
        grad: &mut Layer<F>,
        mut d_input: Option<&mut [F]>,
    ) {
        let (n, m) = (self.size, self.inputs);
        assert_eq!(d_output.len(), steps * n);
        let mut g = vec![F::zero(); n];
        // dL/dz_j^{t} arriving from step t+1 (recurrence, reset, adaptation)
        let mut carry = vec![F::zero(); n];
        let mut next_carry = vec![F::zero(); n];
        // g^t of every step, for the input synapses' sweep after the time loop
        let mut g_history = Vec::new();
        let mut lam_rec = Vec::new();
        let mut k_rec = Vec::new();
        if let Decays::Synapse { recurrent, .. } = &self.decays {
            g_history = vec![F::zero(); steps * n];
            if recurrent.is_some() {
                lam_rec = vec![F::zero(); n * n];
                k_rec = vec![F::zero(); n * n];
            }
        }
        let mut mu = vec![F::zero(); n]; // adjoint of J (HetSyn reset) or of S (collapsed)
        let mut nu = vec![F::zero(); n]; // adjoint of A
        let mut active = Vec::with_capacity(n);
        let inputs = StepInputs::new(input, steps, m);

        for t in (0..steps).rev() {
            let potential = &tape.potential[t * n..(t + 1) * n];
            let dz = &d_output[t * n..(t + 1) * n];
            match &self.spiking {
                Some(spiking) => {
                    for j in 0..n {
                        g[j] = dz[j] + carry[j];
                        if let Some(r) = rate_grad {
                            g[j] += r[j];
                        }
                    }
                    spiking.activation.scale_by_derivatives(potential, spiking.threshold.f64(), &mut g);
                }
                None => g.copy_from_slice(dz),
            }
            next_carry.fill(F::zero());
            let (x, x_active) = inputs.at(t);
            let z_prev = (t > 0 && self.spiking.is_some()).then(|| &tape.spikes[(t - 1) * n..t * n]);
            let mut dx = d_input.as_deref_mut().map(|d| &mut d[t * m..(t + 1) * m]);

            match (&self.decays, &mut grad.decays) {
                (Decays::Synapse { recurrent: q, reset: kappa, .. }, Decays::Synapse { recurrent: dq, .. }) => {
                    g_history[t * n..(t + 1) * n].copy_from_slice(&g);
                    if let (Some(u), Some(q), Some(du), Some(dq), Some(z_prev)) =
                        (&self.recurrent_weight, q, grad.recurrent_weight.as_mut(), dq.as_mut(), z_prev)
                    {
                        active_indices(z_prev, &mut active);
                        for j in 0..n {
                            let row = j * n..(j + 1) * n;
                            synapse_row_backward(
                                g[j],
                                &u[row.clone()],
                                &q[row.clone()],
                                &mut lam_rec[row.clone()],
                                &mut k_rec[row.clone()],
                                Some(&mut next_carry),
                            );
                            accumulate_sparse(
                                z_prev,
                                &active,
                                &lam_rec[row.clone()],
                                &k_rec[row.clone()],
                                &mut du[row.clone()],
                                &mut dq[row],
                            );
                        }
                    }
                    if let Some(spiking) = &self.spiking {
                        // J = kappa J + theta z^{t-1}, V -= J:  mu^t = -g^t + kappa mu^{t+1}
                        for j in 0..n {
                            mu[j] = *kappa * mu[j] - g[j];
                            next_carry[j] += spiking.threshold * mu[j];
                        }
                    }
                }
                (Decays::Neuron { rho, learnable }, Decays::Neuron { rho: drho, .. }) => {
                    for j in 0..n {
                        mu[j] = g[j] + rho[j] * mu[j];
                    }
                    if *learnable && t > 0 {
                        let s_prev = &tape.membrane[(t - 1) * n..t * n];
                        for j in 0..n {
                            drho[j] += mu[j] * s_prev[j];
                        }
                    }
                    for j in 0..n {
                        let dw = &mut grad.input_weight[j * m..(j + 1) * m];
                        for &i in x_active {
                            dw[i] += mu[j] * x[i];
                        }
                        if let Some(dx) = dx.as_deref_mut() {
                            axpy(mu[j], &self.input_weight[j * m..(j + 1) * m], dx);
                        }
                    }
                    if let (Some(u), Some(du), Some(z_prev)) =
                        (&self.recurrent_weight, grad.recurrent_weight.as_mut(), z_prev)
                    {
                        active_indices(z_prev, &mut active);
                        for j in 0..n {
                            let du = &mut du[j * n..(j + 1) * n];
                            for &k in &active {
                                du[k] += mu[j] * z_prev[k];
                            }
                            axpy(mu[j], &u[j * n..(j + 1) * n], &mut next_carry);
                        }
                    }
                    if let Some(spiking) = &self.spiking {
                        for j in 0..n {
                            next_carry[j] -= spiking.threshold * mu[j];
                        }
                    }
                }
                _ => unreachable!("gradient layer has the shape of the layer"),
            }

            if let Some(Spiking { adaptation: Some(adaptation), .. }) = &self.spiking {
                for j in 0..n {
                    nu[j] = adaptation.decay * nu[j] - g[j];
                    next_carry[j] += adaptation.strength * nu[j];
                }
            }
            std::mem::swap(&mut carry, &mut next_carry);
        }

        // The input synapses, one neuron at a time over all steps (their adjoints
        // do not feed back into g): lam and K of one row stay in the L1 cache.
        if let (Decays::Synapse { input: r, .. }, Decays::Synapse { input: dr, .. }) = (&self.decays, &mut grad.decays)
        {
            let mut lam = vec![F::zero(); m];
            let mut k = vec![F::zero(); m];
            for j in 0..n {
                let row = j * m..(j + 1) * m;
                let (weight, decay) = (&self.input_weight[row.clone()], &r[row.clone()]);
                let (dw, dr) = (&mut grad.input_weight[row.clone()], &mut dr[row]);
                lam.fill(F::zero());
                k.fill(F::zero());
                // steps `t..steps` are done; single steps until whole passes remain
                let mut t = steps;
                while t % STEPS_PER_PASS != 0 {
                    t -= 1;
                    let (x, active) = inputs.at(t);
                    let dx = d_input.as_deref_mut().map(|d| &mut d[t * m..(t + 1) * m]);
                    synapse_row_backward(g_history[t * n + j], weight, decay, &mut lam, &mut k, dx);
                    accumulate_sparse(x, active, &lam, &k, dw, dr);
                }
                // passes over steps `t-1, .., t-S`: the active inputs of all but the
                // last step read `lam`, `K` recomputed from the pass's start values
                while t > 0 {
                    let g: [F; STEPS_PER_PASS] = std::array::from_fn(|s| g_history[(t - 1 - s) * n + j]);
                    for s in 0..STEPS_PER_PASS - 1 {
                        let (x, active) = inputs.at(t - 1 - s);
                        accumulate_ahead(&g[..=s], x, active, decay, &lam, &k, dw, dr);
                    }
                    let dx = d_input.as_deref_mut().map(|d| {
                        let mut rows = d[(t - STEPS_PER_PASS) * m..t * m].chunks_exact_mut(m).rev();
                        std::array::from_fn(|_| rows.next().expect("one row per step"))
                    });
                    synapse_row_backward_steps(g, weight, decay, &mut lam, &mut k, dx);
                    t -= STEPS_PER_PASS;
                    let (x, active) = inputs.at(t);
                    accumulate_sparse(x, active, &lam, &k, dw, dr);
                }
            }
        }
    }

    /// Completes a summed gradient: the reverse sweep leaves `sum_t x K` in the
    /// per-synapse decay gradients, and `dL/dr_ji = w_ji * sum_t x_i^t K_ji^t`.
    pub fn finish_gradient(&self, grad: &mut Layer<F>) {
        if let Decays::Synapse { input: dr, recurrent: dq, .. } = &mut grad.decays {
            for (d, w) in dr.iter_mut().zip(&self.input_weight) {
                *d *= *w;
            }
            if let (Some(dq), Some(u)) = (dq.as_mut(), &self.recurrent_weight) {
                for (d, w) in dq.iter_mut().zip(u) {
                    *d *= *w;
                }
            }
        }
    }
}

/// Steps of the input synapses' reverse sweep done in one pass over a row
/// ([`synapse_row_backward_steps`]).
const STEPS_PER_PASS: usize = 2;

/// [`accumulate_sparse`] at a step `s + 1` steps before the one `lam`, `K` hold:
/// each active entry is first advanced by `K_i = lam_i + r_i K_i`,
/// `lam_i = g + r_i lam_i` for each `g` of `g` in order (the operations of
/// [`synapse_row_backward`], so the same bits).
#[allow(clippy::too_many_arguments)]
#[inline]
fn accumulate_ahead<F: Float>(
    g: &[F],
    x: &[F],
    active: &[usize],
    decay: &[F],
    lam: &[F],
    k: &[F],
    dw: &mut [F],
    dr: &mut [F],
) {
    for &i in active {
        let (mut l, mut kk) = (lam[i], k[i]);
        for &g in g {
            kk = l + decay[i] * kk;
            l = g + decay[i] * l;
        }
        dw[i] += x[i] * l;
        dr[i] += x[i] * kk;
    }
}

/// `dw_i += x_i lam_i`, `dr_i += x_i K_i` over the active inputs of one row.
#[inline]
fn accumulate_sparse<F: Float>(x: &[F], active: &[usize], lam: &[F], k: &[F], dw: &mut [F], dr: &mut [F]) {
    for &i in active {
        dw[i] += x[i] * lam[i];
        dr[i] += x[i] * k[i];
    }
}

/// The layer's forward and reverse sweeps compiled for wider vector instructions,
/// chosen at run time. Without fused multiply-add every lane computes exactly
/// what the portable code does, so results are identical on every path.
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{Layer, LayerInput, LayerTape};
    use crate::model::kernels::x86::{Avx2, Avx512};
    use crate::model::Float;

    macro_rules! compiled_for {
        ($features:literal, $isa:ident, $forward:ident, $backward:ident) => {
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $forward<F: Float>(
                layer: &Layer<F>,
                input: LayerInput<'_, F>,
                steps: usize,
                tape: &mut LayerTape<F>,
            ) {
                // SAFETY: this function's caller guarantees the features.
                layer.forward_body(unsafe { $isa::new_unchecked() }, input, steps, tape)
            }

            #[allow(clippy::too_many_arguments)]
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $backward<F: Float>(
                layer: &Layer<F>,
                input: LayerInput<'_, F>,
                steps: usize,
                tape: &LayerTape<F>,
                d_output: &[F],
                rate_grad: Option<&[F]>,
                grad: &mut Layer<F>,
                d_input: Option<&mut [F]>,
            ) {
                layer.backward_body(input, steps, tape, d_output, rate_grad, grad, d_input)
            }
        };
    }

    compiled_for!("avx512f", Avx512, forward_avx512, backward_avx512);
    compiled_for!("avx2", Avx2, forward_avx2, backward_avx2);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Surrogate;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_layer(rng: &mut ChaCha8Rng, inputs: usize, size: usize) -> Layer<f32> {
        let mut v = |n: usize, lo: f32, hi: f32| -> Vec<f32> { (0..n).map(|_| rng.gen_range(lo..hi)).collect() };
        Layer {
            inputs,
            size,
            input_weight: v(size * inputs, -0.5, 0.9),
            recurrent_weight: Some(v(size * size, -0.3, 0.3)),
            decays: Decays::Synapse {
                input: v(size * inputs, 0.5, 0.99),
                recurrent: Some(v(size * size, 0.5, 0.99)),
                reset: 0.9,
            },
            spiking: Some(Spiking {
                threshold: 1.0,
                activation: Activation::Step(Surrogate::MultiGaussian),
                adaptation: None,
            }),
        }
    }

    /// The run-time choice of instruction set changes no bit of any result.
    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (inputs, size, steps) = (101, 37, 61);
        let layer = random_layer(&mut rng, inputs, size);
        let x: Vec<f32> = (0..steps * inputs).map(|_| if rng.gen::<f64>() < 0.1 { 1.0 } else { 0.0 }).collect();
        let d_out: Vec<f32> = (0..steps * size).map(|_| rng.gen_range(-1.0..1.0)).collect();

        let run = |which: usize| {
            let mut tape = LayerTape::default();
            let mut grad = layer.zeros_like();
            let mut dx = vec![0.0f32; steps * inputs];
            let input = LayerInput::Dense(&x);
            match which {
                0 => {
                    layer.forward_body(Portable, input, steps, &mut tape);
                    layer.backward_body(input, steps, &tape, &d_out, None, &mut grad, Some(&mut dx));
                }
                #[cfg(target_arch = "x86_64")]
                1 => unsafe {
                    simd::forward_avx2(&layer, input, steps, &mut tape);
                    simd::backward_avx2(&layer, input, steps, &tape, &d_out, None, &mut grad, Some(&mut dx));
                },
                #[cfg(target_arch = "x86_64")]
                2 => unsafe {
                    simd::forward_avx512(&layer, input, steps, &mut tape);
                    simd::backward_avx512(&layer, input, steps, &tape, &d_out, None, &mut grad, Some(&mut dx));
                },
                _ => unreachable!(),
            }
            (tape.potential, tape.spikes, grad, dx)
        };
        let portable = run(0);
        assert!(portable.1.iter().any(|z| *z > 0.0), "the layer must spike for the test to mean anything");
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                assert!(run(1) == portable, "AVX2 results differ from the portable code");
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                assert!(run(2) == portable, "AVX-512 results differ from the portable code");
            }
        }
    }
}
