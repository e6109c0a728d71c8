#!/usr/bin/env bash
# Pattern generation (paper §4.1, Fig. 2B-F): background noise 1, 2, 3, 4 Hz x
# hetsynlif, hetneulif, homneualif, homneulif x feed-forward (the paper's
# 100 -> 100 -> 1) and recurrent hidden layer x seeds, on configs/pattern.toml (Adam
# 1e-3 for weights and decays, the paper's rate). Per run: the test MSE of the model
# selected on validation and of the last one, and the normalised distances between
# repeats (output of repeat 2 vs 1 and 3 vs 2, relative to the target's; App. B).
# Recorded in docs/results/pattern.csv, MSE curves (Fig. 2D) in
# docs/results/curves/pattern.csv, and the output traces of seed 0 at 2 Hz (Fig. 2A:
# target and output of the first test trial) in docs/results/traces/pattern.csv.
#
#   scripts/paper/pattern.sh [--full] [--seeds N] [--jobs N] [--threads T] [--out DIR] [--dry-run]
#
# Every run: the paper's 1000 iterations of batch 1.
# Default: 3 seeds (96 runs), 11 min with --jobs 2 on 2 cores (measured 2026-11-30).
# --full: the paper's 10 runs (320 runs), about 35 min the same way (estimated).
set -euo pipefail
name=pattern
source "$(dirname "$0")/lib.sh"
paper_args "$@"
seeds=$(paper_seeds 3 10)
paper_grid configs/pattern.toml \
  --vary task.noise_rate=1,2,3,4 \
  --vary model.kind=hetsynlif,hetneulif,homneualif,homneulif \
  --vary model.layers.0.recurrent=false,true \
  --vary seed="$seeds"
paper_results task.noise_rate,model.kind,model.layers.0.recurrent \
  test_loss_at_best_validation,last_test_loss,best_test_loss,test_metrics_at_best_validation.distance_2_1,test_metrics_at_best_validation.distance_3_2,last_test_metrics.distance_2_1,last_test_metrics.distance_3_2 \
  train_loss,test_loss
paper_run
paper_traces 'noise_rate-2_*_seed-0'
paper_record
paper_summarize --by task.noise_rate,model.kind,model.layers.0.recurrent \
  --metrics test_loss_at_best_validation,test_metrics_at_best_validation.distance_2_1,test_metrics_at_best_validation.distance_3_2 \
  --plot-x task.noise_rate
