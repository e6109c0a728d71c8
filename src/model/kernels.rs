//! The inner loops over synapses: plain loops over contiguous slices that the
//! compiler vectorises, and for the row sums of the forward sweep explicit
//! AVX-512 / AVX2 code. Sums use a fixed number of lanes combined in a fixed
//! order, so results do not depend on threads or on the instruction set.

use super::Float;

/// Accumulator lanes of the row sums. Lane `l` sums the entries `i = l mod LANES`
/// in increasing `i`, and the lanes are combined in a fixed tree (see [`tree_sum`]),
/// so the sum is the same whatever vector width computes it: four AVX-512 or
/// eight AVX2 registers of independent partial sums (no fused multiply-add).
const LANES: usize = 64;

/// The instruction set a forward sweep runs with. A token of a wider set than
/// [`Portable`] exists only on a CPU that has it.
pub trait Isa: Copy {
    /// [`decay_row`] on `f32`.
    fn decay_row_f32<const SUM_BEFORE: bool>(self, decay: &[f32], current: &mut [f32]) -> f32;
}

/// Plain Rust, any CPU.
#[derive(Debug, Clone, Copy)]
pub struct Portable;

impl Isa for Portable {
    #[inline(always)]
    fn decay_row_f32<const SUM_BEFORE: bool>(self, decay: &[f32], current: &mut [f32]) -> f32 {
        decay_row_portable::<f32, SUM_BEFORE>(decay, current)
    }
}

/// One row of per-synapse currents decayed in place, `I_i = r_i * I_i`, returning
/// `sum_i I_i` of the currents before the decay (`SUM_BEFORE`) or after it.
/// One pass: each current is read once.
#[inline(always)]
pub fn decay_row<F: Float, I: Isa, const SUM_BEFORE: bool>(isa: I, decay: &[F], current: &mut [F]) -> F {
    F::decay_row::<I, SUM_BEFORE>(isa, decay, current)
}

/// [`decay_row`] in plain Rust, the reference order of every instruction set.
#[inline(always)]
pub fn decay_row_portable<F: Float, const SUM_BEFORE: bool>(decay: &[F], current: &mut [F]) -> F {
    let n = current.len();
    let mut acc = [F::zero(); LANES];
    for (cur, dec) in current.chunks_mut(LANES).zip(decay[..n].chunks(LANES)) {
        for l in 0..cur.len() {
            let before = cur[l];
            cur[l] = dec[l] * before;
            acc[l] += if SUM_BEFORE { before } else { cur[l] };
        }
    }
    tree_sum(&mut acc)
}

/// `sum_i v_i` in the lane order of [`decay_row`].
pub fn lane_sum<F: Float>(values: &[F]) -> F {
    let mut acc = [F::zero(); LANES];
    for chunk in values.chunks(LANES) {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a += *v;
        }
    }
    tree_sum(&mut acc)
}

/// Combines partial sums (a power of two of them) in a fixed tree:
/// `acc_l += acc_{l + width}` for `width = len/2, len/4, .., 1`; returns `acc_0`.
#[inline(always)]
fn tree_sum<F: Float>(acc: &mut [F]) -> F {
    let mut width = acc.len();
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] = acc[l] + acc[l + width];
        }
    }
    acc[0]
}

/// One row of per-synapse currents (model.md §1), returning their sum:
/// `I_i = r_i * I_i + w_i * x_i`, `sum_i I_i`, computed as the sum of the decayed
/// row (lane order of [`decay_row`]) plus the input terms of the `active`
/// (non-zero) inputs in order.
#[inline(always)]
pub fn synapse_row_forward<F: Float, I: Isa>(
    isa: I,
    weight: &[F],
    decay: &[F],
    x: &[F],
    active: &[usize],
    current: &mut [F],
) -> F {
    let mut sum = decay_row::<F, I, false>(isa, decay, current);
    for &i in active {
        let drive = weight[i] * x[i];
        current[i] += drive;
        sum += drive;
    }
    sum
}

/// `I_i += w_i * x_i` over the `active` (non-zero) inputs.
#[inline(always)]
pub fn add_input<F: Float>(weight: &[F], x: &[F], active: &[usize], current: &mut [F]) {
    for &i in active {
        current[i] += weight[i] * x[i];
    }
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

/// `S` steps of [`synapse_row_backward`] in one pass over the row, `t, t-1, ..,
/// t-S+1` with `g[s]` the adjoint at step `t-s` and `dx[s]` the row of step `t-s`:
/// each `lam_i`, `K_i`, `r_i` is loaded and stored once for `S` steps. Per entry
/// the operations are those of `S` calls, in the same order, so the bits are too.
#[inline(always)]
pub fn synapse_row_backward_steps<F: Float, const S: usize>(
    g: [F; S],
    weight: &[F],
    decay: &[F],
    lam: &mut [F],
    k: &mut [F],
    dx: Option<[&mut [F]; S]>,
) {
    let n = lam.len();
    let (weight, decay, k) = (&weight[..n], &decay[..n], &mut k[..n]);
    match dx {
        Some(dx) => {
            let dx = dx.map(|d| &mut d[..n]);
            for i in 0..n {
                let (r, w) = (decay[i], weight[i]);
                let (mut l, mut kk) = (lam[i], k[i]);
                for s in 0..S {
                    kk = l + r * kk;
                    l = g[s] + r * l;
                    dx[s][i] += w * l;
                }
                lam[i] = l;
                k[i] = kk;
            }
        }
        None => {
            for i in 0..n {
                let r = decay[i];
                let (mut l, mut kk) = (lam[i], k[i]);
                for s in 0..S {
                    kk = l + r * kk;
                    l = g[s] + r * l;
                }
                lam[i] = l;
                k[i] = kk;
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

/// The row sums of [`decay_row`] in explicit AVX-512 and AVX2 code.
#[cfg(target_arch = "x86_64")]
pub mod x86 {
    use super::{tree_sum, Isa, LANES};
    use std::arch::x86_64::*;

    /// Token of a CPU with AVX2.
    #[derive(Debug, Clone, Copy)]
    pub struct Avx2(());

    /// Token of a CPU with AVX-512F.
    #[derive(Debug, Clone, Copy)]
    pub struct Avx512(());

    impl Avx2 {
        /// # Safety
        /// The CPU must have AVX2 (e.g. called from code compiled for it).
        pub unsafe fn new_unchecked() -> Self {
            Avx2(())
        }
    }

    impl Avx512 {
        /// # Safety
        /// The CPU must have AVX-512F (e.g. called from code compiled for it).
        pub unsafe fn new_unchecked() -> Self {
            Avx512(())
        }
    }

    impl Isa for Avx2 {
        #[inline(always)]
        fn decay_row_f32<const SUM_BEFORE: bool>(self, decay: &[f32], current: &mut [f32]) -> f32 {
            // SAFETY: the token exists only on a CPU with AVX2.
            unsafe { decay_row_avx2::<SUM_BEFORE>(decay, current) }
        }
    }

    impl Isa for Avx512 {
        #[inline(always)]
        fn decay_row_f32<const SUM_BEFORE: bool>(self, decay: &[f32], current: &mut [f32]) -> f32 {
            // SAFETY: the token exists only on a CPU with AVX-512F.
            unsafe { decay_row_avx512::<SUM_BEFORE>(decay, current) }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn decay_row_avx2<const SUM_BEFORE: bool>(decay: &[f32], current: &mut [f32]) -> f32 {
        decay_row::<__m256, SUM_BEFORE>(decay, current)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn decay_row_avx512<const SUM_BEFORE: bool>(decay: &[f32], current: &mut [f32]) -> f32 {
        decay_row::<__m512, SUM_BEFORE>(decay, current)
    }

    /// A register of `WIDTH` f32 lanes. With `len < WIDTH`, `load` fills the lanes
    /// from `len` on with zeros and `store` leaves them unwritten. Callers must
    /// run with the register's instruction set and pass `len` valid entries.
    trait Vector: Copy {
        const WIDTH: usize;
        unsafe fn zero() -> Self;
        unsafe fn load(p: *const f32, len: usize) -> Self;
        unsafe fn store(self, p: *mut f32, len: usize);
        unsafe fn add(self, other: Self) -> Self;
        unsafe fn mul(self, other: Self) -> Self;
        /// Writes the lanes to `out[..WIDTH]`.
        unsafe fn lanes(self, out: &mut [f32; 16]);
    }

    impl Vector for __m512 {
        const WIDTH: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> Self {
            _mm512_setzero_ps()
        }
        #[inline(always)]
        unsafe fn load(p: *const f32, len: usize) -> Self {
            if len == Self::WIDTH {
                _mm512_loadu_ps(p)
            } else {
                _mm512_maskz_loadu_ps(((1u32 << len) - 1) as u16, p)
            }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32, len: usize) {
            if len == Self::WIDTH {
                _mm512_storeu_ps(p, self)
            } else {
                _mm512_mask_storeu_ps(p, ((1u32 << len) - 1) as u16, self)
            }
        }
        #[inline(always)]
        unsafe fn add(self, other: Self) -> Self {
            _mm512_add_ps(self, other)
        }
        #[inline(always)]
        unsafe fn mul(self, other: Self) -> Self {
            _mm512_mul_ps(self, other)
        }
        #[inline(always)]
        unsafe fn lanes(self, out: &mut [f32; 16]) {
            _mm512_storeu_ps(out.as_mut_ptr(), self)
        }
    }

    impl Vector for __m256 {
        const WIDTH: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> Self {
            _mm256_setzero_ps()
        }
        #[inline(always)]
        unsafe fn load(p: *const f32, len: usize) -> Self {
            if len == Self::WIDTH {
                _mm256_loadu_ps(p)
            } else {
                _mm256_maskload_ps(p, mask8(len))
            }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32, len: usize) {
            if len == Self::WIDTH {
                _mm256_storeu_ps(p, self)
            } else {
                _mm256_maskstore_ps(p, mask8(len), self)
            }
        }
        #[inline(always)]
        unsafe fn add(self, other: Self) -> Self {
            _mm256_add_ps(self, other)
        }
        #[inline(always)]
        unsafe fn mul(self, other: Self) -> Self {
            _mm256_mul_ps(self, other)
        }
        #[inline(always)]
        unsafe fn lanes(self, out: &mut [f32; 16]) {
            _mm256_storeu_ps(out.as_mut_ptr(), self)
        }
    }

    /// All bits set in the lanes below `len`.
    #[inline(always)]
    unsafe fn mask8(len: usize) -> __m256i {
        _mm256_cmpgt_epi32(_mm256_set1_epi32(len as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
    }

    /// [`super::decay_row`] with the `LANES` partial sums in `LANES / WIDTH`
    /// independent registers (register `k` holds lanes `k*WIDTH ..`). Lanes past
    /// the end of the row add zeros, which leaves a partial sum unchanged: it
    /// starts at +0 and so is never -0.
    #[inline(always)]
    unsafe fn decay_row<V: Vector, const SUM_BEFORE: bool>(decay: &[f32], current: &mut [f32]) -> f32 {
        let n = current.len();
        assert!(decay.len() >= n);
        let registers = LANES / V::WIDTH;
        let mut acc = [V::zero(); 8];
        let (cur, dec) = (current.as_mut_ptr(), decay.as_ptr());
        // SAFETY (all pointer offsets below): `i + len <= n` entries of both rows.
        let mut step = |k: usize, i: usize, len: usize| {
            let before = V::load(cur.add(i), len);
            let after = before.mul(V::load(dec.add(i), len));
            after.store(cur.add(i), len);
            acc[k] = acc[k].add(if SUM_BEFORE { before } else { after });
        };
        let full = n / LANES * LANES;
        for start in (0..full).step_by(LANES) {
            for k in 0..registers {
                step(k, start + k * V::WIDTH, V::WIDTH);
            }
        }
        for k in 0..registers {
            let i = full + k * V::WIDTH;
            if i >= n {
                break;
            }
            step(k, i, (n - i).min(V::WIDTH));
        }
        // the tree of `tree_sum`: first across registers, then within one
        let mut width = registers;
        while width > 1 {
            width /= 2;
            for k in 0..width {
                acc[k] = acc[k].add(acc[k + width]);
            }
        }
        let mut lanes = [0.0f32; 16];
        acc[0].lanes(&mut lanes);
        tree_sum(&mut lanes[..V::WIDTH])
    }
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
            let sum = synapse_row_forward(Portable, &w, &r, &x, &active, &mut cur);
            for (a, b) in cur.iter().zip(&want) {
                assert!((a - b).abs() < 1e-14);
            }
            assert!((sum - want_sum).abs() < 1e-12);
        }
    }

    /// A pass over several steps gives the bits of one pass per step.
    #[test]
    fn backward_steps_match_single_steps() {
        for n in [0usize, 1, 7, 16, 17, 101, 700] {
            let w: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let r: Vec<f32> = (0..n).map(|i| 0.5 + 0.45 * (i as f32 * 1.3).cos()).collect();
            let lam: Vec<f32> = (0..n).map(|i| (i as f32 * 0.71).cos() * 3.0).collect();
            let k: Vec<f32> = (0..n).map(|i| (i as f32 * 0.13).sin() * 7.0).collect();
            let dx: Vec<f32> = (0..3 * n).map(|i| (i as f32 * 0.29).cos()).collect();
            let g = [0.3f32, -1.7, 0.011];
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for with_dx in [false, true] {
                let (mut lam1, mut k1, mut dx1) = (lam.clone(), k.clone(), dx.clone());
                for (s, row) in dx1.chunks_mut(n.max(1)).take(3).enumerate() {
                    synapse_row_backward(g[s], &w, &r, &mut lam1, &mut k1, with_dx.then_some(row));
                }
                let (mut lam3, mut k3, mut dx3) = (lam.clone(), k.clone(), dx.clone());
                let rows = with_dx.then(|| {
                    let (a, rest) = dx3.split_at_mut(n);
                    let (b, c) = rest.split_at_mut(n);
                    [a, b, c]
                });
                synapse_row_backward_steps(g, &w, &r, &mut lam3, &mut k3, rows);
                assert_eq!(bits(&lam1), bits(&lam3), "n {n}");
                assert_eq!(bits(&k1), bits(&k3), "n {n}");
                assert_eq!(bits(&dx1), bits(&dx3), "n {n}");
            }
        }
    }

    /// Every instruction set computes the row sums of the portable code, bit for bit.
    #[test]
    fn decay_row_is_the_same_on_every_instruction_set() {
        for n in [0usize, 1, 5, 8, 15, 16, 17, 63, 64, 65, 101, 128, 700] {
            let r: Vec<f32> = (0..n).map(|i| 0.5 + 0.4 * (i as f32 * 1.3).cos()).collect();
            let cur: Vec<f32> = (0..n).map(|i| (i as f32 * 0.77).sin() * 1e3f32.powf((i % 7) as f32 / 7.0)).collect();
            let run = |f: &dyn Fn(&mut [f32]) -> f32| {
                let mut c = cur.clone();
                let s = f(&mut c);
                (s.to_bits(), c.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            };
            for before in [false, true] {
                let call = |isa: &dyn Fn(&[f32], &mut [f32], bool) -> f32| run(&|c| isa(&r, c, before));
                let portable = call(&|d, c, b| {
                    if b {
                        decay_row::<f32, _, true>(Portable, d, c)
                    } else {
                        decay_row::<f32, _, false>(Portable, d, c)
                    }
                });
                let sum: f32 = cur.iter().zip(&r).map(|(c, d)| if before { *c } else { c * d }).sum();
                assert!((f32::from_bits(portable.0) - sum).abs() <= 1e-3 * (1.0 + sum.abs()), "n {n}");
                #[cfg(target_arch = "x86_64")]
                {
                    if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: just detected.
                        let isa = unsafe { x86::Avx2::new_unchecked() };
                        let got = call(&|d, c, b| {
                            if b {
                                decay_row::<f32, _, true>(isa, d, c)
                            } else {
                                decay_row::<f32, _, false>(isa, d, c)
                            }
                        });
                        assert!(got == portable, "AVX2, n {n}, sum before decay {before}");
                    }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: just detected.
                        let isa = unsafe { x86::Avx512::new_unchecked() };
                        let got = call(&|d, c, b| {
                            if b {
                                decay_row::<f32, _, true>(isa, d, c)
                            } else {
                                decay_row::<f32, _, false>(isa, d, c)
                            }
                        });
                        assert!(got == portable, "AVX-512, n {n}, sum before decay {before}");
                    }
                }
            }
        }
    }
}
