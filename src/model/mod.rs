//! The maths of `shared/design/model.md`: layers of leaky integrate-and-fire
//! neurons whose synaptic currents decay per synapse (HetSyn) or per neuron
//! (the collapsed reductions), a leaky readout, losses, and the exact
//! memory-lean surrogate gradient (§5).
//!
//! - [`layer`]: one layer's state, forward step and reverse sweep (§1, §2, §5)
//! - [`kernels`]: the contiguous inner loops over synapses
//! - [`activation`]: spike function and surrogate derivatives (§4)
//! - [`loss`]: readout losses and the firing-rate regulariser (§3)
//! - [`network`]: the stack of layers, batch gradients split over samples
//! - [`init`]: building a network from the config

pub mod activation;
pub mod init;
pub mod kernels;
pub mod layer;
pub mod loss;
pub mod network;

pub use activation::{Activation, Surrogate};
pub use layer::{Adaptation, Decays, Layer, LayerInput, Spiking};
pub use loss::{LossKind, RateRegulariser};
pub use network::{BatchStats, Dropout, Network, ParamInfo, ParamKind};

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
    fn of(x: f64) -> Self;
    fn f64(self) -> f64;

    /// [`kernels::decay_row`]: `f32` runs with the instruction set `isa`, other
    /// types run the portable code.
    #[inline(always)]
    fn decay_row<I: kernels::Isa, const SUM_BEFORE: bool>(isa: I, decay: &[Self], current: &mut [Self]) -> Self {
        let _ = isa;
        kernels::decay_row_portable::<Self, SUM_BEFORE>(decay, current)
    }
}

impl Float for f32 {
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn decay_row<I: kernels::Isa, const SUM_BEFORE: bool>(isa: I, decay: &[Self], current: &mut [Self]) -> Self {
        isa.decay_row_f32::<SUM_BEFORE>(decay, current)
    }
}

impl Float for f64 {
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
}
