//! One layer of the network (model.md §1–§2, §5): a hidden layer of spiking
//! neurons or the leaky readout, with per-synapse (HetSyn) or per-neuron
//! (collapsed) decays. The model kind is data: one forward step and one reverse
//! sweep serve all four models and the readout.

use super::activation::Activation;
use super::kernels::{
    adjoint_product, channel_outer_product, dispatch, for_each_nonzero, input_columns_drive, input_rows_drive,
    input_rows_sweep, recurrent_adjoint, recurrent_step, single_input_drive, sparse_row_sum, Aligned, BlockInput,
    ChannelEvents, Isa, IsaTask, Scratch, StepRows, WIDTH,
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
    pub(super) inputs: usize,
    pub(super) size: usize,
    /// `w_ji`, `[size, inputs]`
    pub(super) input_weight: Vec<F>,
    /// `u_jk`, `[size, size]`, recurrent layers only
    pub(super) recurrent_weight: Option<Vec<F>>,
    pub(super) decays: Decays<F>,
    pub(super) spiking: Option<Spiking<F>>,
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
    #[inline(always)]
    fn new<I: Isa>(isa: I, input: LayerInput<'a, F>, steps: usize, width: usize) -> Self {
        let mut offsets = Vec::with_capacity(steps + 1);
        offsets.push(0);
        let mut active = Vec::new();
        let rows = match input {
            LayerInput::Dense(x) => {
                assert_eq!(x.len(), steps * width, "layer input must be [steps, inputs]");
                for row in x.chunks_exact(width.max(1)).take(steps) {
                    append_active_indices(isa, row, &mut active);
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
    #[inline(always)]
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

    /// The events grouped by input, each input's in decreasing step, read
    /// `shift` steps late (the event of step `t` counts at step `t + shift`).
    #[inline(always)]
    fn by_channel(&self, shift: usize) -> ChannelEvents<F> {
        let steps = self.offsets.len() - 1;
        let last = steps.saturating_sub(shift);
        let mut offsets = vec![0usize; self.width + 1];
        for &i in &self.active[..self.offsets[last]] {
            offsets[i + 1] += 1;
        }
        for i in 0..self.width {
            offsets[i + 1] += offsets[i];
        }
        let total = offsets[self.width];
        let mut cursor = offsets.clone();
        let (mut event_steps, mut values) = (vec![0u32; total], vec![F::zero(); total]);
        for t in (0..last).rev() {
            let (x, active) = self.at(t);
            for &i in active {
                event_steps[cursor[i]] = (t + shift) as u32;
                values[cursor[i]] = x[i];
                cursor[i] += 1;
            }
        }
        ChannelEvents { offsets, steps: event_steps, values }
    }

    /// Row `t` and its active (non-zero) entries.
    #[inline(always)]
    fn at(&self, t: usize) -> (&[F], &[usize]) {
        StepRows::at(self, t)
    }
}

impl<F: Float> StepRows<F> for StepInputs<'_, F> {
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
    /// `S^t` of the collapsed form, `[steps, size]`, for learnable per-neuron
    /// decays with adaptation only (otherwise `S^t = V^t`, and this is empty)
    pub membrane: Vec<F>,
    /// The layer's input as the row kernels read it (per-synapse decays only;
    /// bit masks per step and block, so small): built once by the forward pass
    /// and read again by the reverse sweep.
    pub input: BlockInput<F>,
}

/// One sample's part of a layer's reverse sweep ([`Layer::backward_prepared`]).
pub struct SampleGrad<'a, F> {
    /// The layer's input, as in the forward pass.
    pub input: LayerInput<'a, F>,
    pub tape: &'a LayerTape<F>,
    /// `dL/dz^t` (or `dL/dy^t`), `[steps, size]`; overwritten with the adjoints.
    pub d_output: &'a mut [F],
    /// Receives `dL/dx^t` (added to it), `[steps, inputs]`, when given.
    pub d_input: Option<&'a mut [F]>,
}

impl<F: Float> Layer<F> {
    /// A layer of `size` neurons reading `inputs` inputs; panics when a tensor
    /// does not have the shape its doc comment gives.
    pub fn new(
        inputs: usize,
        size: usize,
        input_weight: Vec<F>,
        recurrent_weight: Option<Vec<F>>,
        decays: Decays<F>,
        spiking: Option<Spiking<F>>,
    ) -> Self {
        assert_eq!(input_weight.len(), size * inputs, "input weights must be [size, inputs]");
        assert!(
            recurrent_weight.as_ref().is_none_or(|u| u.len() == size * size),
            "recurrent weights must be [size, size]"
        );
        match &decays {
            Decays::Synapse { input, recurrent, .. } => {
                assert_eq!(input.len(), size * inputs, "input decays must be [size, inputs]");
                assert!(
                    recurrent.as_ref().is_none_or(|q| q.len() == size * size),
                    "recurrent decays must be [size, size]"
                );
            }
            Decays::Neuron { rho, .. } => assert_eq!(rho.len(), size, "neuron decays must be [size]"),
        }
        Layer { inputs, size, input_weight, recurrent_weight, decays, spiking }
    }

    /// Inputs per neuron.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Neurons.
    pub fn size(&self) -> usize {
        self.size
    }

    /// `w_ji`, `[size, inputs]`.
    pub fn input_weight(&self) -> &[F] {
        &self.input_weight
    }

    /// `u_jk`, `[size, size]` (recurrent layers only).
    pub fn recurrent_weight(&self) -> Option<&[F]> {
        self.recurrent_weight.as_deref()
    }

    pub fn decays(&self) -> &Decays<F> {
        &self.decays
    }

    /// `None` for the leaky readout.
    pub fn spiking(&self) -> Option<&Spiking<F>> {
        self.spiking.as_ref()
    }

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
        self.forward_prepared(&self.prepare(), input, steps, tape)
    }

    /// [`Layer::forward`] with the parameters arranged once by [`Layer::prepare`].
    pub fn forward_prepared(
        &self,
        prepared: &Prepared<F>,
        input: LayerInput<'_, F>,
        steps: usize,
        tape: &mut LayerTape<F>,
    ) {
        dispatch(Forward { layer: self, prepared, input, steps, tape })
    }

    /// The layer's parameters arranged for the kernels, to be shared by the
    /// samples of a batch (the parameters must not change in between): the
    /// recurrent weights of the collapsed form transposed, and the recurrent
    /// matrices of HetSyn transposed (forward) and padded to whole blocks
    /// (reverse sweep).
    pub fn prepare(&self) -> Prepared<F> {
        let n = self.size;
        let np = n.div_ceil(WIDTH) * WIDTH;
        match (&self.decays, &self.recurrent_weight) {
            (Decays::Synapse { recurrent: Some(q), .. }, Some(u)) => Prepared {
                recurrent_columns: Some(RecurrentMatrices {
                    weight: transposed(u, n, n, np),
                    decay: transposed(q, n, n, np),
                }),
                recurrent_rows: Some(RecurrentMatrices::padded(u, q, n, np)),
                ..Prepared::default()
            },
            (Decays::Synapse { .. }, _) => Prepared::default(),
            (Decays::Neuron { .. }, u) => {
                Prepared { recurrent_t: u.as_ref().map(|u| transposed(u, n, n, np)), ..Prepared::default() }
            }
        }
    }

    /// The body of [`Layer::forward`], compiled once per instruction set.
    #[inline(always)]
    fn forward_body<I: Isa>(
        &self,
        isa: I,
        prepared: &Prepared<F>,
        input: LayerInput<'_, F>,
        steps: usize,
        tape: &mut LayerTape<F>,
    ) {
        let (n, m) = (self.size, self.inputs);
        tape.potential.clear();
        tape.potential.resize(steps * n, F::zero());
        tape.spikes.clear();
        if self.spiking.is_some() {
            tape.spikes.resize(steps * n, F::zero());
        }
        // S^t is needed for learnable decays; without adaptation it is V^t
        let adapting = self.spiking.is_some_and(|s| s.adaptation.is_some());
        let keep_membrane = matches!(self.decays, Decays::Neuron { learnable: true, .. }) && adapting;
        tape.membrane.clear();
        if keep_membrane {
            tape.membrane.resize(steps * n, F::zero());
        }
        let zeros = vec![F::zero(); n];
        let binary_spikes = self.spiking.is_some_and(|s| s.activation.is_binary());

        // The input drive of every neuron at every step is computed before the
        // time loop (it does not depend on the layer's own spikes) into the
        // potentials, `[steps, n]`: row `t` is read, then overwritten, at step `t`.
        // HetSyn: `sum_i I_ji^t`, a few neurons at a time so that their rows stay
        // in cache, with the currents of a block of inputs in registers over all
        // steps (`input_rows_drive`). Collapsed form: `sum_i w_ji x_i^t` over the
        // active inputs (`input_columns_drive`).
        let np = n.div_ceil(WIDTH) * WIDTH;
        let mut row_sum = vec![F::zero(); np];
        let mut recurrent = None;
        let mut sparse_inputs = None;
        match &self.decays {
            Decays::Synapse { input: r, recurrent: q, .. } => {
                let x = block_input(isa, input, steps, m);
                if m == 1 {
                    single_input_drive(isa, &self.input_weight, r, &x, &mut tape.potential);
                } else {
                    // `input_rows_drive` writes every entry of `acc` before reading it
                    let mut scratch = Scratch::take(I::ROWS * steps * WIDTH);
                    let acc = scratch.as_mut_slice();
                    for j0 in (0..n).step_by(I::ROWS) {
                        let (j1, span) = ((j0 + I::ROWS).min(n), j0 * m..(j0 + I::ROWS).min(n) * m);
                        let (w, decay, drive) = (&self.input_weight[span.clone()], &r[span], &mut tape.potential[j0..]);
                        input_rows_drive(isa, w, decay, j1 - j0, &x, acc, drive, n);
                    }
                }
                tape.input = x;
                if let (Some(_), Some(_)) = (&self.recurrent_weight, q) {
                    // transposed: the sums over k run down the lanes
                    let matrices = prepared.recurrent_columns.as_ref().expect("prepared for another layer");
                    recurrent = Some((matrices, Aligned::zeros(n * np), vec![false; n]));
                }
            }
            Decays::Neuron { .. } => {
                // the drive of every step, written into the potentials (each row is
                // read, then overwritten, at its step)
                let inputs = StepInputs::new(isa, input, steps, m);
                let mut slab = Vec::new();
                input_columns_drive(isa, &self.input_weight, n, m, steps, &inputs, &mut slab, &mut tape.potential);
                assert_eq!(prepared.recurrent_t.is_some(), self.is_recurrent(), "prepared for another layer");
                sparse_inputs = prepared.recurrent_t.as_ref().map(|ut| (ut, Vec::with_capacity(n)));
            }
        }
        // per-neuron states: reset current J (HetSyn) or collapsed S; adaptation A
        let mut neuron_state = vec![F::zero(); n];
        let mut adaptation_current = vec![F::zero(); n];

        for t in 0..steps {
            let split = (t * n).min(tape.spikes.len());
            let (past, now) = tape.spikes.split_at_mut(split);
            let z_prev: &[F] = if t == 0 || past.is_empty() { &zeros } else { &past[(t - 1) * n..] };
            let v = &mut tape.potential[t * n..(t + 1) * n];
            let theta = self.spiking.map(|s| s.threshold);

            match &self.decays {
                Decays::Synapse { reset: kappa, .. } => {
                    if let Some((rec, current, started)) = recurrent.as_mut() {
                        let z = &z_prev[..n];
                        recurrent_step(
                            isa,
                            &rec.weight,
                            &rec.decay,
                            np,
                            z,
                            binary_spikes,
                            started,
                            current,
                            &mut row_sum,
                        );
                        for j in 0..n {
                            v[j] += row_sum[j];
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
                        neuron_state[j] = rho[j] * neuron_state[j] + v[j];
                    }
                    if let Some((ut, active)) = sparse_inputs.as_mut() {
                        active_indices(isa, z_prev, active);
                        sparse_row_sum(isa, ut, np, z_prev, active, &mut row_sum);
                        for j in 0..n {
                            neuron_state[j] += row_sum[j];
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
    /// `d_input` (`[steps, inputs]`), when given, receives `dL/dx^t` (added to it).
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
        let mut d_output = d_output.to_vec();
        let mut sample = [SampleGrad { input, tape, d_output: &mut d_output, d_input }];
        self.backward_prepared(&self.prepare(), &mut sample, steps, rate_grad, grad)
    }

    /// [`Layer::backward`] for a group of samples, their gradients added to
    /// `grad` in the group's order, with the parameters arranged once by
    /// [`Layer::prepare`]. Each sample's `d_output` is overwritten: row `t`
    /// receives the adjoints of step `t` (`g^t`, or `mu^t` of the collapsed
    /// form), which the sweeps after the time loop read, so that no other
    /// `[steps, size]` record is needed.
    ///
    /// The samples of a layer with per-synapse recurrent decays go through the
    /// time loop together ([`recurrent_adjoint`] shares each load of `u` and `q`);
    /// the gradients are summed after it, sample by sample, so the numbers are
    /// those of one sample at a time. Other layers take one sample at a time.
    pub fn backward_prepared(
        &self,
        prepared: &Prepared<F>,
        samples: &mut [SampleGrad<'_, F>],
        steps: usize,
        rate_grad: Option<&[F]>,
        grad: &mut Layer<F>,
    ) {
        let together = matches!(self.decays, Decays::Synapse { recurrent: Some(_), .. }) && self.is_recurrent();
        for group in samples.chunks_mut(if together { 4 } else { 1 }) {
            dispatch(Backward { layer: self, prepared, samples: group, steps, rate_grad, grad })
        }
    }

    /// The body of [`Layer::backward_prepared`] for one group, compiled once per
    /// instruction set.
    #[inline(always)]
    fn backward_body<I: Isa>(
        &self,
        isa: I,
        prepared: &Prepared<F>,
        samples: &mut [SampleGrad<'_, F>],
        steps: usize,
        rate_grad: Option<&[F]>,
        grad: &mut Layer<F>,
    ) {
        let (n, group) = (self.size, samples.len());
        for sample in samples.iter() {
            assert_eq!(sample.d_output.len(), steps * n);
        }
        // per sample s: g, mu, nu at [s * n..], the carries at [s * np..]
        let mut g = vec![F::zero(); group * n];
        // dL/dz_j^{t} arriving from step t+1 (recurrence, reset, adaptation),
        // padded to whole blocks for the recurrent kernel
        let np = n.div_ceil(WIDTH) * WIDTH;
        let mut carry = vec![F::zero(); group * np];
        let mut next_carry = vec![F::zero(); group * np];
        let mut lam_rec = None;
        if let (Decays::Synapse { recurrent: Some(_), .. }, Some(_)) = (&self.decays, &self.recurrent_weight) {
            let rows = prepared.recurrent_rows.as_ref().expect("prepared for another layer");
            lam_rec = Some((rows, Aligned::zeros(group * n * np)));
        }
        let mut mu = vec![F::zero(); group * n]; // adjoint of J (HetSyn reset) or of S (collapsed)
        let mut nu = vec![F::zero(); group * n]; // adjoint of A

        for t in (0..steps).rev() {
            for (s, sample) in samples.iter_mut().enumerate() {
                let (g, carry) = (&mut g[s * n..(s + 1) * n], &carry[s * np..]);
                let potential = &sample.tape.potential[t * n..(t + 1) * n];
                // row t of d_output is read here and then holds g^t (HetSyn) or mu^t
                let dz = &mut sample.d_output[t * n..(t + 1) * n];
                match &self.spiking {
                    Some(spiking) => {
                        for j in 0..n {
                            g[j] = dz[j] + carry[j];
                            if let Some(r) = rate_grad {
                                g[j] += r[j];
                            }
                        }
                        spiking.activation.scale_by_derivatives(potential, spiking.threshold.f64(), g);
                    }
                    None => g.copy_from_slice(dz),
                }
                // (the collapsed form writes mu^t there below)
                if let Decays::Synapse { .. } = self.decays {
                    dz.copy_from_slice(g);
                }
            }
            next_carry.fill(F::zero());

            match (&self.decays, &mut grad.decays) {
                (Decays::Synapse { reset: kappa, .. }, _) => {
                    // recurrent synapses: only lam feeds the carry; their gradients
                    // are summed after the loop (`input_rows_sweep` on z^{t-1})
                    if let (Some((rec, lam)), true) = (lam_rec.as_mut(), t > 0) {
                        recurrent_adjoint(isa, &g, &rec.weight, &rec.decay, np, lam, &mut next_carry);
                    }
                    if let Some(spiking) = &self.spiking {
                        // J = kappa J + theta z^{t-1}, V -= J:  mu^t = -g^t + kappa mu^{t+1}
                        for s in 0..group {
                            for j in 0..n {
                                mu[s * n + j] = *kappa * mu[s * n + j] - g[s * n + j];
                                next_carry[s * np + j] += spiking.threshold * mu[s * n + j];
                            }
                        }
                    }
                }
                (Decays::Neuron { rho, learnable }, Decays::Neuron { rho: drho, .. }) => {
                    for (s, sample) in samples.iter_mut().enumerate() {
                        let (g, mu) = (&g[s * n..(s + 1) * n], &mut mu[s * n..(s + 1) * n]);
                        let next_carry = &mut next_carry[s * np..s * np + n];
                        for j in 0..n {
                            mu[j] = g[j] + rho[j] * mu[j];
                        }
                        if *learnable && t > 0 {
                            let tape = sample.tape;
                            let s = if tape.membrane.is_empty() { &tape.potential } else { &tape.membrane };
                            let s_prev = &s[(t - 1) * n..t * n];
                            for j in 0..n {
                                drho[j] += mu[j] * s_prev[j];
                            }
                        }
                        sample.d_output[t * n..(t + 1) * n].copy_from_slice(mu);
                        // C^{t-1} = U^T mu^t (next_carry is zero here)
                        if let (Some(u), true) = (&self.recurrent_weight, t > 0 && self.spiking.is_some()) {
                            adjoint_product(isa, mu, n, u, n, n, next_carry);
                        }
                        if let Some(spiking) = &self.spiking {
                            for j in 0..n {
                                next_carry[j] -= spiking.threshold * mu[j];
                            }
                        }
                    }
                }
                _ => unreachable!("gradient layer has the shape of the layer"),
            }

            if let Some(Spiking { adaptation: Some(adaptation), .. }) = &self.spiking {
                for s in 0..group {
                    for j in 0..n {
                        nu[s * n + j] = adaptation.decay * nu[s * n + j] - g[s * n + j];
                        next_carry[s * np + j] += adaptation.strength * nu[s * n + j];
                    }
                }
            }
            std::mem::swap(&mut carry, &mut next_carry);
        }

        // the gradients, one sample after the other
        for sample in samples.iter_mut() {
            self.sum_gradients(isa, sample, steps, grad);
        }
    }

    /// After the time loop of [`Layer::backward_body`]: one sample's weight
    /// and decay gradients added to `grad`, and its `dL/dx`, from the adjoints
    /// left in its `d_output`.
    #[inline(always)]
    fn sum_gradients<I: Isa>(&self, isa: I, sample: &mut SampleGrad<'_, F>, steps: usize, grad: &mut Layer<F>) {
        let (n, m) = (self.size, self.inputs);
        let SampleGrad { input, tape, d_output, d_input } = sample;
        let (input, tape, d_output, d_input) = (*input, *tape, &**d_output, d_input.as_deref_mut());
        match (&self.decays, &mut grad.decays) {
            (Decays::Synapse { input: r, recurrent: q, .. }, Decays::Synapse { input: dr, recurrent: dq, .. }) => {
                // Input synapses, one neuron at a time over all steps (their adjoints
                // do not feed back into g): lam and K of a block stay in registers.
                // the forward pass's (the same input), unless the tape lacks it
                let rebuilt;
                let x = if tape.input.steps == steps && tape.input.width == m {
                    &tape.input
                } else {
                    rebuilt = block_input(isa, input, steps, m);
                    &rebuilt
                };
                let mut dx = d_input;
                for j0 in (0..n).step_by(I::ROWS) {
                    let (j1, span) = ((j0 + I::ROWS).min(n), j0 * m..(j0 + I::ROWS).min(n) * m);
                    let (w, decay) = (&self.input_weight[span.clone()], &r[span.clone()]);
                    let (dw, dk) = (&mut grad.input_weight[span.clone()], &mut dr[span]);
                    let g = &d_output[j0..];
                    input_rows_sweep(isa, j1 - j0, g, n, w, decay, x, dw, dk, dx.as_deref_mut());
                }
                // Recurrent synapses: the same sweep with the input z^{t-1}.
                if let (Some(u), Some(q), Some(du), Some(dq)) =
                    (&self.recurrent_weight, q, grad.recurrent_weight.as_mut(), dq.as_mut())
                {
                    let z = BlockInput::from_dense(isa, &tape.spikes, steps, n, 1);
                    for j0 in (0..n).step_by(I::ROWS) {
                        let (j1, span) = ((j0 + I::ROWS).min(n), j0 * n..(j0 + I::ROWS).min(n) * n);
                        let g = &d_output[j0..];
                        let (du, dq) = (&mut du[span.clone()], &mut dq[span.clone()]);
                        input_rows_sweep(isa, j1 - j0, g, n, &u[span.clone()], &q[span], &z, du, dq, None);
                    }
                }
            }
            (Decays::Synapse { .. }, _) => unreachable!("gradient layer has the shape of the layer"),
            (Decays::Neuron { .. }, _) => {
                // dL/dw_ji = sum_t mu_j^t x_i^t (terms in decreasing t), with the
                // events grouped by input; likewise dL/du_jk with z_k^{t-1}.
                let events = StepInputs::new(isa, input, steps, m).by_channel(0);
                channel_outer_product(isa, &events, d_output, n, &mut grad.input_weight, m);
                if let (Some(du), true) = (grad.recurrent_weight.as_mut(), self.spiking.is_some()) {
                    let events = StepInputs::new(isa, LayerInput::Dense(&tape.spikes), steps, n).by_channel(1);
                    channel_outer_product(isa, &events, d_output, n, du, n);
                }
                // dL/dx^t = sum_j mu_j^t w_j· for all steps at once
                if let Some(d) = d_input {
                    adjoint_product(isa, d_output, n, &self.input_weight, n, m, d);
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

/// A layer's input as the row kernels read it ([`BlockInput`]).
#[inline(always)]
fn block_input<F: Float, I: Isa>(isa: I, input: LayerInput<'_, F>, steps: usize, width: usize) -> BlockInput<F> {
    match input {
        LayerInput::Dense(x) => {
            assert_eq!(x.len(), steps * width, "layer input must be [steps, inputs]");
            BlockInput::from_dense(isa, x, steps, width, 0)
        }
        LayerInput::Spikes { offsets, active } => BlockInput::from_events(offsets, active, None, steps, width),
        LayerInput::Counts { offsets, active, counts } => {
            BlockInput::from_events(offsets, active, Some(counts), steps, width)
        }
    }
}

/// A layer's parameters arranged for the kernels ([`Layer::prepare`]).
#[derive(Debug, Default)]
pub struct Prepared<F> {
    /// Collapsed form: `u` transposed, `[size, stride]`.
    recurrent_t: Option<Aligned<F>>,
    /// HetSyn: `u`, `q` transposed (forward).
    recurrent_columns: Option<RecurrentMatrices<F>>,
    /// HetSyn: `u`, `q` in rows padded to whole blocks (reverse sweep).
    recurrent_rows: Option<RecurrentMatrices<F>>,
}

/// The recurrent weights `u` and decays `q` of a HetSyn layer, `[n, stride]`:
/// rows zero-padded to whole blocks, or transposed.
#[derive(Debug)]
struct RecurrentMatrices<F> {
    weight: Aligned<F>,
    decay: Aligned<F>,
}

impl<F: Float> RecurrentMatrices<F> {
    fn padded(u: &[F], q: &[F], n: usize, stride: usize) -> Self {
        let pad = |v: &[F]| {
            let mut out = Aligned::zeros(n * stride);
            for (o, row) in out.chunks_exact_mut(stride).zip(v.chunks_exact(n.max(1))) {
                o[..n].copy_from_slice(row);
            }
            out
        };
        RecurrentMatrices { weight: pad(u), decay: pad(q) }
    }
}

/// `w` (`[rows, cols]`) transposed to `[cols, stride]`, rows zero-padded; in
/// tiles of 16 x 16 so that reads and writes stay within a few cache lines.
fn transposed<F: Float>(w: &[F], rows: usize, cols: usize, stride: usize) -> Aligned<F> {
    const TILE: usize = 16;
    assert!(w.len() >= rows * cols && stride >= rows);
    let mut out = Aligned::zeros(cols * stride);
    for j0 in (0..rows).step_by(TILE) {
        for i0 in (0..cols).step_by(TILE) {
            for j in j0..(j0 + TILE).min(rows) {
                let row = &w[j * cols..(j + 1) * cols];
                for i in i0..(i0 + TILE).min(cols) {
                    out[i * stride + j] = row[i];
                }
            }
        }
    }
    out
}

/// Indices of the non-zero entries of `x`.
#[inline(always)]
fn active_indices<F: Float, I: Isa>(isa: I, x: &[F], active: &mut Vec<usize>) {
    active.clear();
    append_active_indices(isa, x, active);
}

/// Appends the indices of the non-zero entries of `x` to `active`, in order.
#[inline(always)]
fn append_active_indices<F: Float, I: Isa>(isa: I, x: &[F], active: &mut Vec<usize>) {
    for_each_nonzero(isa, x, |i| active.push(i));
}

/// [`Layer::forward_body`] as a task for [`dispatch`].
struct Forward<'l, 'x, 't, F> {
    layer: &'l Layer<F>,
    prepared: &'l Prepared<F>,
    input: LayerInput<'x, F>,
    steps: usize,
    tape: &'t mut LayerTape<F>,
}

impl<F: Float> IsaTask for Forward<'_, '_, '_, F> {
    type Output = ();
    #[inline(always)]
    fn run<I: Isa>(self, isa: I) {
        self.layer.forward_body(isa, self.prepared, self.input, self.steps, self.tape)
    }
}

/// [`Layer::backward_body`] as a task for [`dispatch`].
struct Backward<'l, 's, 'a, F> {
    layer: &'l Layer<F>,
    prepared: &'l Prepared<F>,
    samples: &'s mut [SampleGrad<'a, F>],
    steps: usize,
    rate_grad: Option<&'l [F]>,
    grad: &'l mut Layer<F>,
}

impl<F: Float> IsaTask for Backward<'_, '_, '_, F> {
    type Output = ();
    #[inline(always)]
    fn run<I: Isa>(self, isa: I) {
        let Backward { layer, prepared, samples, steps, rate_grad, grad } = self;
        layer.backward_body(isa, prepared, samples, steps, rate_grad, grad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::{run_with, InstructionSet};
    use crate::model::Surrogate;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_layer(rng: &mut ChaCha8Rng, inputs: usize, size: usize, per_synapse: bool) -> Layer<f32> {
        let mut v = |n: usize, lo: f32, hi: f32| -> Vec<f32> { (0..n).map(|_| rng.gen_range(lo..hi)).collect() };
        let input_weight = v(size * inputs, -0.5, 0.9);
        let recurrent_weight = Some(v(size * size, -0.3, 0.3));
        let decays = if per_synapse {
            Decays::Synapse {
                input: v(size * inputs, 0.5, 0.99),
                recurrent: Some(v(size * size, 0.5, 0.99)),
                reset: 0.9,
            }
        } else {
            Decays::Neuron { rho: v(size, 0.5, 0.99), learnable: true }
        };
        Layer {
            inputs,
            size,
            input_weight,
            recurrent_weight,
            decays,
            spiking: Some(Spiking {
                threshold: 1.0,
                activation: Activation::Step(Surrogate::MultiGaussian),
                adaptation: None,
            }),
        }
    }

    /// A forward and reverse sweep of one layer.
    #[derive(Clone)]
    struct Sweep<'a> {
        layer: &'a Layer<f32>,
        x: &'a [f32],
        d_out: &'a [f32],
        steps: usize,
    }

    type SweepResult = (Vec<f32>, Vec<f32>, Layer<f32>, Vec<f32>);

    impl IsaTask for Sweep<'_> {
        type Output = SweepResult;
        fn run<I: Isa>(self, isa: I) -> SweepResult {
            let (layer, steps) = (self.layer, self.steps);
            let mut tape = LayerTape::default();
            let mut grad = layer.zeros_like();
            let mut dx = vec![0.0f32; steps * layer.inputs];
            let input = LayerInput::Dense(self.x);
            let prepared = layer.prepare();
            layer.forward_body(isa, &prepared, input, steps, &mut tape);
            let mut d_out = self.d_out.to_vec();
            let mut sample = [SampleGrad { input, tape: &tape, d_output: &mut d_out, d_input: Some(&mut dx) }];
            layer.backward_body(isa, &prepared, &mut sample, steps, None, &mut grad);
            (tape.potential, tape.spikes, grad, dx)
        }
    }

    /// Samples swept as one group give the bits of samples swept one after the
    /// other: gradients, adjoints and input gradients (groups of 4 and 1 here).
    #[test]
    fn a_group_sweep_equals_samples_one_by_one() {
        for per_synapse in [true, false] {
            let mut rng = ChaCha8Rng::seed_from_u64(11);
            let (inputs, size, steps, samples) = (23, 37, 41, 5);
            let layer = random_layer(&mut rng, inputs, size, per_synapse);
            let x: Vec<Vec<f32>> = (0..samples)
                .map(|_| (0..steps * inputs).map(|_| if rng.gen::<f64>() < 0.2 { 1.0 } else { 0.0 }).collect())
                .collect();
            let d_out: Vec<Vec<f32>> =
                (0..samples).map(|_| (0..steps * size).map(|_| rng.gen_range(-1.0..1.0)).collect()).collect();
            let rate: Vec<f32> = (0..size).map(|_| rng.gen_range(-0.1..0.1)).collect();
            let tapes: Vec<LayerTape<f32>> = x
                .iter()
                .map(|x| {
                    let mut tape = LayerTape::default();
                    layer.forward(LayerInput::Dense(x), steps, &mut tape);
                    tape
                })
                .collect();
            assert!(tapes.iter().all(|t| t.spikes.iter().any(|z| *z > 0.0)), "the layer must spike");
            let mut one_by_one = (layer.zeros_like(), d_out.clone(), vec![vec![0.0f32; steps * inputs]; samples]);
            for b in 0..samples {
                let mut sample = [SampleGrad {
                    input: LayerInput::Dense(&x[b]),
                    tape: &tapes[b],
                    d_output: &mut one_by_one.1[b],
                    d_input: Some(&mut one_by_one.2[b]),
                }];
                layer.backward_prepared(&layer.prepare(), &mut sample, steps, Some(&rate), &mut one_by_one.0);
            }
            let mut together = (layer.zeros_like(), d_out.clone(), vec![vec![0.0f32; steps * inputs]; samples]);
            let mut group: Vec<SampleGrad<'_, f32>> = x
                .iter()
                .zip(&tapes)
                .zip(together.1.iter_mut().zip(together.2.iter_mut()))
                .map(|((x, tape), (d_output, d_input))| SampleGrad {
                    input: LayerInput::Dense(x),
                    tape,
                    d_output,
                    d_input: Some(d_input),
                })
                .collect();
            layer.backward_prepared(&layer.prepare(), &mut group, steps, Some(&rate), &mut together.0);
            drop(group);
            let bits = |v: &[Vec<f32>]| v.iter().flatten().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(together.0 == one_by_one.0, "gradients, per-synapse {per_synapse}");
            assert_eq!(bits(&together.1), bits(&one_by_one.1), "adjoints, per-synapse {per_synapse}");
            assert_eq!(bits(&together.2), bits(&one_by_one.2), "input gradients, per-synapse {per_synapse}");
        }
    }

    /// The run-time choice of instruction set changes no bit of any result, for
    /// per-synapse and per-neuron decays, spike and analog inputs.
    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (per_synapse, analog) in [(true, false), (true, true), (false, false), (false, true)] {
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let (inputs, size, steps) = (101, 37, 61);
            let layer = random_layer(&mut rng, inputs, size, per_synapse);
            let x: Vec<f32> = (0..steps * inputs)
                .map(|_| {
                    if rng.gen::<f64>() < 0.1 {
                        if analog {
                            rng.gen_range(0.2..1.5)
                        } else {
                            1.0
                        }
                    } else {
                        0.0
                    }
                })
                .collect();
            let d_out: Vec<f32> = (0..steps * size).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let task = Sweep { layer: &layer, x: &x, d_out: &d_out, steps };
            let portable = run_with(InstructionSet::Portable, task.clone()).ok().expect("always available");
            assert!(portable.1.iter().any(|z| *z > 0.0), "the layer must spike for the test to mean anything");
            for set in [InstructionSet::Avx2, InstructionSet::Avx512] {
                if let Ok(got) = run_with(set, task.clone()) {
                    let what = format!("{set:?}, per-synapse {per_synapse}, analog {analog}");
                    assert_eq!(bits(&got.0), bits(&portable.0), "potentials, {what}");
                    assert_eq!(bits(&got.1), bits(&portable.1), "spikes, {what}");
                    assert!(got.2 == portable.2, "gradients, {what}");
                    assert_eq!(bits(&got.3), bits(&portable.3), "input gradients, {what}");
                }
            }
        }
    }
}
