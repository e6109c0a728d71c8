//! Training: the run directory, the trainer loop, evaluation, metrics and
//! model selection, optimizers and learning-rate schedules.

pub mod evaluate;
pub mod freeze;
pub mod interrupt;
pub mod metrics;
pub mod optim;
pub mod run;
pub mod schedule;
pub mod summary;
pub mod tau_stats;
pub mod trainer;

pub use evaluate::{evaluate, evaluate_steps, objective, Evaluation};
pub use run::RunDir;
pub use summary::RunSummary;
pub use trainer::{initial_network, train, TrainOptions, Trainer};
