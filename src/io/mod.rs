//! Input/output at the edges: atomic files, checkpoints and their integrity, metrics.

pub mod atomic;
pub mod checkpoint;
pub mod checksum;
pub mod safetensors_file;
pub mod verify;
