//! hetsyn: spiking neural networks whose synapses each have their own learnable
//! time constant (HetSyn), trained with exact, memory-lean surrogate gradients.
//!
//! The maths is fixed in `docs/model.md`; each module names the section it
//! implements.

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod figures;
pub mod grid;
pub mod io;
pub mod logging;
pub mod model;
pub mod plot;
pub mod process;
pub mod provenance;
pub mod record;
pub mod report;
pub mod summarize;
pub mod tasks;
pub mod train;
pub mod verify;
