//! Input/output at the edges: atomic files, safetensors, checkpoints and their integrity.

pub mod atomic;
pub mod checkpoint;
pub mod checksum;
pub mod safetensors_file;
