//! File primitives at the bottom of the crate: atomic writes, safetensors files and their integrity (checkpoints, which know the config, are the `checkpoint` module above them).

pub mod atomic;
pub mod checksum;
pub mod safetensors_file;
