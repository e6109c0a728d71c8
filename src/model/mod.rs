//! The maths of `docs/model.md`: layers of leaky integrate-and-fire
//! neurons whose synaptic currents decay per synapse (HetSyn) or per neuron
//! (the collapsed reductions), a leaky readout, losses, and the exact
//! memory-lean surrogate gradient (§5).
//!
//! - [`layer`]: one layer's state, forward step and reverse sweep (§1, §2, §5)
//! - [`kernels`]: the contiguous inner loops over synapses
//! - [`keystream`]: a ChaCha8 stream's words computed 16 blocks at a time ([`BulkUniform`])
//! - [`activation`]: spike function and surrogate derivatives (§1, §5.1)
//! - [`loss`]: readout losses and the firing-rate regulariser (§3)
//! - [`network`]: the stack of layers, one sample's forward pass and reverse sweep
//! - [`batch`]: a batch's loss, readout figures and gradient, split over samples
//! - [`params`]: the learnable and saved tensors, their names and the one walk over them
//! - [`init`]: building a network from its [`init::NetworkSpec`]

pub mod activation;
pub mod batch;
pub mod init;
pub mod kernels;
pub mod keystream;
pub mod layer;
pub mod loss;
pub mod network;
pub mod params;

pub use activation::{Activation, Surrogate};
pub use batch::{BatchStats, Dropout, Objective, SampleSource};
pub use layer::{Adaptation, Decays, Layer, LayerInput, Spiking};
pub use loss::{LossKind, RateRegulariser, Target};
pub use network::Network;
pub use params::{layer_name, param_name, ParamInfo, ParamKind, Part, StateError, Storage, Stored};

/// The floating-point type of a network: `f32` for training, `f64` in the
/// gradient tests.
pub trait Float:
    num_traits::Float
    + Default
    + Send
    + Sync
    + std::fmt::Debug
    + std::fmt::Display
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + 'static
{
    /// The vector of [`kernels::WIDTH`] lanes the kernels use with instruction
    /// set `I`: that set's registers for `f32`, plain arrays for `f64`.
    type Lanes<I: kernels::Isa>: kernels::Lanes<Self>;

    fn of(x: f64) -> Self;
    fn f64(self) -> f64;

    /// `e^x` in plain arithmetic, branch-free, so that a loop of it vectorises
    /// and gives the same bits on every CPU ([`kernels::exp`], [`kernels::exp_f32`]).
    fn fast_exp(self) -> Self;
}

impl Float for f32 {
    type Lanes<I: kernels::Isa> = I::F32;
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn fast_exp(self) -> Self {
        kernels::exp_f32(self)
    }
}

impl Float for f64 {
    type Lanes<I: kernels::Isa> = kernels::Portable16<f64>;
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn fast_exp(self) -> Self {
        kernels::exp(self)
    }
}

/// Uniform numbers of a ChaCha8 stream drawn in bulk (the words of `rng.fill`,
/// computed by [`keystream::fill_words`]), which
/// gives the same numbers as one `rng.gen::<f64>()` each: that is the next
/// 64-bit word `w`, as `(w >> 11) * 2^-53`, and `(w >> 11) * 2^-53 < p`
/// exactly when the integer `w >> 11` is below `ceil(p * 2^53)` (scaling by a
/// power of two is exact).
pub struct BulkUniform {
    words: Vec<u64>,
    next: usize,
}

impl BulkUniform {
    /// The next `n` numbers of `rng`.
    pub fn draw(rng: &mut rand_chacha::ChaCha8Rng, n: usize) -> Self {
        let mut words = vec![0u64; n];
        keystream::fill_words(rng, &mut words);
        BulkUniform { words, next: 0 }
    }

    /// Whether each of the next `n` numbers is below `p` (`rng.gen::<f64>() < p`).
    #[inline]
    pub fn below(&mut self, p: f64, n: usize) -> impl Iterator<Item = bool> + '_ {
        let threshold = Self::threshold(p);
        self.take(n).iter().map(move |w| w >> 11 < threshold)
    }

    /// [`BulkUniform::below`] for the next `n` numbers as bit masks: bit `k`
    /// of mask `i` for number `64 i + k` (the decisions of a mask are computed
    /// side by side, without a branch).
    #[inline]
    pub fn below_bits(&mut self, p: f64, n: usize) -> impl Iterator<Item = u64> + '_ {
        let threshold = Self::threshold(p);
        self.take(n).chunks(64).map(move |words| {
            words.iter().enumerate().fold(0, |mask, (k, w)| mask | u64::from(w >> 11 < threshold) << k)
        })
    }

    /// `ceil(p 2^53)`, with `p` clamped to `[0, 1]`.
    fn threshold(p: f64) -> u64 {
        (p.clamp(0.0, 1.0) * (1u64 << 53) as f64).ceil() as u64
    }

    /// The next `n` words.
    fn take(&mut self, n: usize) -> &[u64] {
        self.next += n;
        &self.words[self.next - n..self.next]
    }
}

/// Flushes subnormal floats to zero on this thread (x86: the FTZ and DAZ bits
/// of MXCSR; elsewhere nothing). Once the loss is tiny, adjoints and gradients
/// fall into the subnormal range, where every multiply costs about a hundred
/// times more; their contribution to the result is below `1e-38` anyway. Every
/// thread that computes (the caller's and each worker's) must call it, so that
/// results do not depend on which thread did the work.
pub fn flush_subnormals_to_zero() {
    #[cfg(target_arch = "x86_64")]
    {
        const FLUSH_TO_ZERO: u32 = 1 << 15;
        const DENORMALS_ARE_ZERO: u32 = 1 << 6;
        let mut csr: u32 = 0;
        // SAFETY: stores and loads this thread's MXCSR through a valid local;
        // it only changes how SSE/AVX arithmetic treats subnormal numbers.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
            csr |= FLUSH_TO_ZERO | DENORMALS_ARE_ZERO;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly));
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    /// The bulk draws are those of one `rng.gen::<f64>() < p` each, also after
    /// an odd number of 32-bit words, and they leave the stream where those do.
    #[test]
    fn bulk_numbers_are_those_drawn_one_by_one() {
        for (seed, skip, n, p) in [(1u64, 0usize, 7usize, 0.2), (2, 1, 100, 0.05), (3, 3, 1000, 0.5), (4, 5, 33, 1.0)] {
            let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut b = a.clone();
            for _ in 0..skip {
                a.gen::<u32>();
                b.gen::<u32>();
            }
            let mut draws = super::BulkUniform::draw(&mut a, n);
            let mut got: Vec<bool> = draws.below(p, n - n / 3).collect();
            got.extend(draws.below(p, n / 3));
            let want: Vec<bool> = (0..n).map(|_| b.gen::<f64>() < p).collect();
            assert_eq!(got, want);
            assert_eq!(a.gen::<u64>(), b.gen::<u64>());
        }
    }

    /// The bit masks hold the decisions of `below`, 64 to a mask.
    #[test]
    fn bulk_bits_are_the_decisions() {
        for (n, p) in [(1usize, 0.5), (63, 0.1), (64, 0.3), (65, 0.05), (200, 0.9), (130, 1.0), (70, 0.0)] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(n as u64);
            let (mut a, mut b) =
                (super::BulkUniform::draw(&mut rng.clone(), n + 3), super::BulkUniform::draw(&mut rng, n + 3));
            let want: Vec<bool> = a.below(p, n).collect();
            let masks: Vec<u64> = b.below_bits(p, n).collect();
            assert_eq!(masks.len(), n.div_ceil(64));
            let got: Vec<bool> = (0..n).map(|k| masks[k / 64] >> (k % 64) & 1 == 1).collect();
            assert_eq!(got, want);
            assert!(masks.last().is_some_and(|m| n % 64 == 0 || m >> (n % 64) == 0), "no bits past n");
            // both leave the same numbers
            assert_eq!(a.below(0.5, 3).collect::<Vec<_>>(), b.below(0.5, 3).collect::<Vec<_>>());
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn subnormals_are_flushed_on_this_thread_only() {
        let tiny = std::hint::black_box(1e-30f32);
        let before =
            std::thread::spawn(move || std::hint::black_box(tiny) * std::hint::black_box(1e-10f32)).join().unwrap();
        assert!(before > 0.0 && !before.is_normal(), "a subnormal product without the flush");
        let after = std::thread::spawn(move || {
            super::flush_subnormals_to_zero();
            std::hint::black_box(tiny) * std::hint::black_box(1e-10f32)
        })
        .join()
        .unwrap();
        assert_eq!(after, 0.0);
    }
}
