#!/usr/bin/env bash
# Pattern generation (paper §4.1): background noise 1, 2, 3, 4 Hz x hetsynlif,
# hetneulif, homneulif, homneualif x feed-forward/recurrent x learning rates (weights
# and decays alike) x seeds, on configs/pattern.toml; the table gives per cell the test
# MSE of the model selected on validation and the repeat distances (output of repeat
# 2 vs 1 and 3 vs 2, relative to the target's), mean ± sd over seeds.
#
#   scripts/paper/pattern.sh [--full] [--jobs N] [--threads T] [--out DIR] [--dry-run]
#
# Default: 1 seed, learning rates 1e-3 and 5e-3 (64 runs), 150 iterations (about 11 min
# on 2 cores). --full: 5 seeds, learning rates 5e-4, 1e-3, 2e-3, 5e-3 (640 runs) of the
# config's 1000 iterations.
set -euo pipefail
name=pattern usage_lines=2,12
source "$(dirname "$0")/lib.sh"
paper_args "$@"
if [ "$full" = 1 ]; then
  seeds=$(paper_seeds 5) lrs=5e-4,1e-3,2e-3,5e-3 sets=()
else
  seeds=0 lrs=1e-3,5e-3 sets=(--set train.iterations=150)
fi
paper_grid configs/pattern.toml "${sets[@]}" \
  --vary task.noise_rate=1,2,3,4 \
  --vary model.kind=hetsynlif,hetneulif,homneulif,homneualif \
  --vary model.layers.0.recurrent=false,true \
  --vary train.lr+train.decay_lr="$lrs" \
  --vary seed="$seeds"
paper_run
paper_summarize --by task.noise_rate,model.kind,model.layers.0.recurrent,train.lr \
  --metrics test_loss_at_best_validation,test_metrics_at_best_validation.distance_2_1,test_metrics_at_best_validation.distance_3_2
