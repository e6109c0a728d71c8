//! Input data sets read from disk: the Spiking Heidelberg Digits (SHD) and
//! Spiking Speech Commands (SSC) in their official HDF5 layout, binned into
//! time steps as the HetSyn authors do (`docs/model.md` §4.1), with an
//! on-disk cache of the binned form.
//!
//! - [`shd`]: [`read_spike_file`] reads one split (pure Rust, no libhdf5).
//! - [`binning`]: [`Binning`] settings and [`bin_sample`].
//! - [`cache`]: [`load_binned`] = read + bin + cache.
//! - [`idx`]: MNIST-family IDX image and label files (gzip or plain).

pub mod binning;
pub mod cache;
mod f16;
pub mod idx;
pub mod shd;

pub use binning::{bin_sample, BinnedSample, Binning, Edges};
pub use cache::{load_binned, load_binned_traced, BinnedDataset, CacheOutcome};
pub use shd::{read_spike_file, SpikeDataset, SpikeEvents, TimePrecision};
