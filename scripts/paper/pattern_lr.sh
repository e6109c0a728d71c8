#!/usr/bin/env bash
# Pattern generation at four learning rates (paper Fig. A1): Adam rates 1e-4,
# 5e-4, 1e-3 (the recipe) and 5e-3, the same for weights and decays
# (train.lr+train.decay_lr) x hetsynlif, hetneulif, homneualif, homneulif x
# feed-forward and recurrent hidden layer x seeds, on configs/pattern.toml at its
# 2 Hz background noise. The paper's four rates are not in the text available to
# this project; these four span the recipe's rate by a decade below and a factor 5
# above. Per run: the test MSE (model selected on validation, and the last);
# learning curves (train and test MSE per evaluation) for the figure.
# Recorded in docs/results/pattern_lr.csv, curves in docs/results/curves/pattern_lr.csv.
#
#   scripts/paper/pattern_lr.sh [--full] [--seeds N] [--jobs N] [--threads T] [--out DIR] [--dry-run]
#
# Every run: the paper's 1000 iterations of batch 1.
# Default: 3 seeds (96 runs), about 11 min with --jobs 2 on 2 cores.
# --full: the paper's 10 runs of the pattern task (320 runs).
set -euo pipefail
name=pattern_lr
source "$(dirname "$0")/lib.sh"
paper_args "$@"
seeds=$(paper_seeds 3 10)
paper_grid configs/pattern.toml \
  --vary train.lr+train.decay_lr=1e-4,5e-4,1e-3,5e-3 \
  --vary model.kind=hetsynlif,hetneulif,homneualif,homneulif \
  --vary model.layers.0.recurrent=false,true \
  --vary seed="$seeds"
paper_results train.lr,model.kind,model.layers.0.recurrent \
  test_loss_at_best_validation,last_test_loss,best_test_loss \
  train_loss,test_loss
paper_run
paper_record
paper_summarize --by train.lr,model.kind,model.layers.0.recurrent \
  --metrics test_loss_at_best_validation --plot-x train.lr
