//! Training: optimizers, learning-rate schedules and the trainer loop.

pub mod freeze;
pub mod optim;
pub mod schedule;
pub mod tau_stats;
pub mod trainer;

pub use trainer::{evaluate, evaluate_steps, initial_network, objective, train, RunSummary, TrainOptions};
