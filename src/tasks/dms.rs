//! Delayed match-to-sample
