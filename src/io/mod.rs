//! Input/output at the edges: atomic files, checkpoints, metrics.

pub mod atomic;
pub mod checkpoint;
pub mod safetensors_file;
