#!/usr/bin/env bash
# Pattern generation (paper §4.1): background noise 1, 2, 3, 4 Hz x hetsynlif,
# hetneulif, homneulif, homneualif x feed-forward (the paper's 100 -> 100 -> 1) and
# recurrent hidden layer x seeds, on configs/pattern.toml (Adam 1e-3 for weights and
# decays, the paper's rate); the table gives per cell the test MSE of the model selected
# on validation and the repeat distances (output of repeat 2 vs 1 and 3 vs 2, relative
# to the target's), mean ± sd over seeds; runs/summary_lines.png plots the MSE against
# the noise rate.
#
#   scripts/paper/pattern.sh [--full] [--seeds N] [--jobs N] [--threads T] [--out DIR] [--dry-run]
#
# Every run: the paper's 1000 iterations of batch 1.
# Default: 3 seeds (96 runs), 11 min with --jobs 2 on 2 cores (measured 2026-11-30).
# --full: the paper's 5 seeds (160 runs), 17 min the same way (measured 2026-11-30).
set -euo pipefail
name=pattern
source "$(dirname "$0")/lib.sh"
paper_args "$@"
seeds=$(paper_seeds 3 5)
paper_grid configs/pattern.toml \
  --vary task.noise_rate=1,2,3,4 \
  --vary model.kind=hetsynlif,hetneulif,homneulif,homneualif \
  --vary model.layers.0.recurrent=false,true \
  --vary seed="$seeds"
paper_run
paper_summarize --by task.noise_rate,model.kind,model.layers.0.recurrent \
  --metrics test_loss_at_best_validation,test_metrics_at_best_validation.distance_2_1,test_metrics_at_best_validation.distance_3_2 \
  --plot-x task.noise_rate
