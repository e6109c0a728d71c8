#!/usr/bin/env bash
# Pattern generation with three targets at once (paper Fig. A2): three readouts,
# each with its own sum of five cosines (task.targets = 3), from one hidden layer of
# 100 neurons x hetsynlif, hetneulif, homneualif, homneulif x feed-forward and
# recurrent x seeds, on configs/pattern.toml (2 Hz background noise, Adam 1e-3).
# Per run: the test MSE over the three readouts (model selected on validation, and
# the last). Recorded in docs/results/pattern_targets.csv, and the output traces of
# seed 0 (target and output of each readout, first test trial) in
# docs/results/traces/pattern_targets.csv.
#
#   scripts/paper/pattern_targets.sh [--full] [--seeds N] [--jobs N] [--threads T] [--out DIR] [--dry-run]
#
# Every run: the paper's 1000 iterations of batch 1.
# Default: 3 seeds (24 runs). --full: the paper's 10 runs of the pattern task (80 runs).
set -euo pipefail
name=pattern_targets
source "$(dirname "$0")/lib.sh"
paper_args "$@"
seeds=$(paper_seeds 3 10)
paper_grid configs/pattern.toml \
  --vary task.targets=3 \
  --vary model.kind=hetsynlif,hetneulif,homneualif,homneulif \
  --vary model.layers.0.recurrent=false,true \
  --vary seed="$seeds"
paper_results task.targets,model.kind,model.layers.0.recurrent \
  test_loss_at_best_validation,last_test_loss,best_test_loss
paper_run
paper_traces '*_seed-0'
paper_record
paper_summarize --by model.kind,model.layers.0.recurrent --metrics test_loss_at_best_validation
