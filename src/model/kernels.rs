//! The inner loops over synapses: plain loops over contiguous slices that the
//! compiler vectorises. Sums use a fixed number of lanes, so results do not
//! depend on threads and are the same on every run.

use super::Float;

const LANES: usize = 8;

/// One row of per-synapse currents (model.md §1), returning their sum:
/// `I_i = r_i * I_i + w_i * x_i`, `sum_i I_i`.
#[inline]
pub fn synapse_row_forward<F: Float>(weight: &[F], decay: &[F], x: &[F], current: &mut [F]) -> F {
    let n = current.len();
    let body = n - n % LANES;
    let mut acc = [F::zero(); LANES];
    let (c_body, c_tail) = current.split_at_mut(body);
    for (((c, w), r), x) in c_body
        .chunks_exact_mut(LANES)
        .zip(weight[..body].chunks_exact(LANES))
        .zip(decay[..body].chunks_exact(LANES))
        .zip(x[..body].chunks_exact(LANES))
    {
        for l in 0..LANES {
            let v = r[l] * c[l] + w[l] * x[l];
            c[l] = v;
            acc[l] += v;
        }
    }
    for (l, c) in c_tail.iter_mut().enumerate() {
        let i = body + l;
        *c = decay[i] * *c + weight[i] * x[i];
        acc[l] += *c;
    }
    lane_sum(&acc)
}

/// One row of the reverse sweep of per-synapse currents (model.md §5), with
/// `g` the adjoint of the neuron's potential at step t:
///
/// ```text
/// K_i   = lam_i + r_i * K_i        (K^t = lam^{t+1} + r K^{t+1})
/// lam_i = g + r_i * lam_i          (lam^t = g^t + r lam^{t+1})
/// dx_i += w_i * lam_i              (only when the input needs a gradient)
/// ```
#[inline]
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
    active.extend(
        x.iter()
            .enumerate()
            .filter(|(_, v)| **v != F::zero())
            .map(|(i, _)| i),
    );
}

#[inline]
fn lane_sum<F: Float>(acc: &[F; LANES]) -> F {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_row_matches_plain_loop() {
        for n in [0usize, 1, 7, 8, 9, 23] {
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
            let sum = synapse_row_forward(&w, &r, &x, &mut cur);
            assert_eq!(cur, want);
            assert!((sum - want_sum).abs() < 1e-12);
        }
    }
}
