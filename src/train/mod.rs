//! Training: optimizers, learning-rate schedules and the trainer loop.

pub mod optim;
pub mod schedule;
