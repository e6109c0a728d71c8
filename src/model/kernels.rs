//! The inner loops over synapses: plain loops over contiguous slices that the
//! compiler vectorises. Sums use a fixed number of lanes, so results do not
//! depend on threads and are the same on every run.

use super::Float;

/// Accumulator lanes of the sums (one AVX-512 register of f32; 32 or 64 lanes
/// measured no faster). Lane `l` sums the entries `i = l mod LANES` and the
/// lanes are combined in a fixed tree, so the sum is the same whatever vector
/// width the code runs with (no fused multiply-add).
const LANES: usize = 16;

/// One row of per-synapse currents (model.md §1), returning their sum:
/// `I_i = r_i * I_i + w_i * x_i`, `sum_i I_i`. The decay runs over the whole
/// row; the input term only over the `active` (non-zero) inputs.
#[inline(always)]
pub fn synapse_row_forward<F: Float>(weight: &[F], decay: &[F], x: &[F], active: &[usize], current: &mut [F]) -> F {
    let n = current.len();
    let decay = &decay[..n];
    // a plain loop, which the loop vectoriser versions against aliasing
    for i in 0..n {
        current[i] = decay[i] * current[i];
    }
    let mut sum = lane_sum(current);
    for &i in active {
        let drive = weight[i] * x[i];
        current[i] += drive;
        sum += drive;
    }
    sum
}

/// One row of the reverse sweep of per-synapse currents (model.md §5), with
/// `g` the adjoint of the neuron's potential at step t:
///
/// ```text
/// K_i   = lam_i + r_i * K_i        (K^t = lam^{t+1} + r K^{t+1})
/// lam_i = g + r_i * lam_i          (lam^t = g^t + r lam^{t+1})
/// dx_i += w_i * lam_i              (only when the input needs a gradient)
/// ```
#[inline(always)]
pub fn synapse_row_backward<F: Float>(
    g: F,
    weight: &[F],
    decay: &[F],
    lam: &mut [F],
    k: &mut [F],
    dx: Option<&mut [F]>,
) {
    let n = lam.len();
    let (weight, decay, k) = (&weight[..n], &decay[..n], &mut k[..n]);
    match dx {
        Some(dx) => {
            let dx = &mut dx[..n];
            for i in 0..n {
                let l = lam[i];
                k[i] = l + decay[i] * k[i];
                let l = g + decay[i] * l;
                lam[i] = l;
                dx[i] += weight[i] * l;
            }
        }
        None => {
            for i in 0..n {
                let l = lam[i];
                k[i] = l + decay[i] * k[i];
                lam[i] = g + decay[i] * l;
            }
        }
    }
}

/// `sum_i w_i x_i` over the active (non-zero) inputs only.
#[inline]
pub fn sparse_dot<F: Float>(weight: &[F], x: &[F], active: &[usize]) -> F {
    let mut acc = F::zero();
    for &i in active {
        acc += weight[i] * x[i];
    }
    acc
}

/// `y_i += a * x_i` over a contiguous row.
#[inline]
pub fn axpy<F: Float>(a: F, x: &[F], y: &mut [F]) {
    let n = y.len();
    let x = &x[..n];
    for i in 0..n {
        y[i] += a * x[i];
    }
}

/// Indices of the non-zero entries of `x`.
pub fn active_indices<F: Float>(x: &[F], active: &mut Vec<usize>) {
    active.clear();
    append_active_indices(x, active);
}

/// Appends the indices of the non-zero entries of `x` to `active`.
pub fn append_active_indices<F: Float>(x: &[F], active: &mut Vec<usize>) {
    active.extend(x.iter().enumerate().filter(|(_, v)| **v != F::zero()).map(|(i, _)| i));
}

/// `sum_i v_i` with `LANES` partial sums combined in a fixed tree.
#[inline(always)]
pub fn lane_sum<F: Float>(values: &[F]) -> F {
    let (body, tail) = values.as_chunks::<LANES>();
    let mut acc = [F::zero(); LANES];
    for chunk in body {
        for l in 0..LANES {
            acc[l] += chunk[l];
        }
    }
    for (l, v) in tail.iter().enumerate() {
        acc[l] += *v;
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] = acc[l] + acc[l + width];
        }
    }
    acc[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_row_matches_plain_loop() {
        for n in [0usize, 1, 7, 8, 9, 23, 40] {
            let w: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let r: Vec<f64> = (0..n).map(|i| 0.5 + 0.4 * (i as f64).cos()).collect();
            let x: Vec<f64> = (0..n).map(|i| (i % 3) as f64).collect();
            let mut cur: Vec<f64> = (0..n).map(|i| i as f64 * 0.1).collect();
            let mut want = cur.clone();
            let mut want_sum = 0.0;
            for i in 0..n {
                want[i] = r[i] * want[i] + w[i] * x[i];
                want_sum += want[i];
            }
            let mut active = Vec::new();
            active_indices(&x, &mut active);
            let sum = synapse_row_forward(&w, &r, &x, &active, &mut cur);
            for (a, b) in cur.iter().zip(&want) {
                assert!((a - b).abs() < 1e-14);
            }
            assert!((sum - want_sum).abs() < 1e-12);
        }
    }
}
