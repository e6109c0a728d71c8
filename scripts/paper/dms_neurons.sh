#!/usr/bin/env bash
# DMS with limited neurons (paper §4.2, Fig. 3D-G; Fig. 3B's learning curves are
# its 100-neuron feed-forward runs): hidden layer of 5, 20, 50, 100 neurons x
# hetsynlif, hetneulif, homneualif, homneulif x feed-forward/recurrent x seeds, on
# configs/dms.toml. The table gives per cell the success rate (runs with test
# accuracy at best validation >= 90 %) and the mean ± sd accuracy. Recorded per run
# in docs/results/dms_neurons.csv (accuracies, iterations to 95 %), curves in
# docs/results/curves/dms_neurons.csv.
#
#   scripts/paper/dms_neurons.sh [--full] [--seeds N] [--jobs N] [--threads T] [--out DIR] [--dry-run]
#
# Every run: the paper's 1000 iterations of batch 32, 256/512 validation/test trials.
# Default: 5 seeds (160 runs). --full: the paper's 50 runs per cell (1,600 runs; about
# 5 h with --jobs 2 on 2 cores, estimated from 10 seeds of all cells in 1 h).
set -euo pipefail
name=dms_neurons
source "$(dirname "$0")/lib.sh"
paper_args "$@"
seeds=$(paper_seeds 5 50)
paper_grid configs/dms.toml \
  --vary model.layers.0.size=5,20,50,100 \
  --vary model.kind=hetsynlif,hetneulif,homneualif,homneulif \
  --vary model.layers.0.recurrent=false,true \
  --vary seed="$seeds"
paper_results model.layers.0.size,model.kind,model.layers.0.recurrent \
  test_accuracy_at_best_validation,last_test_accuracy,best_test_accuracy,best_validation_accuracy,iterations_to_95 \
  train_accuracy,test_accuracy
paper_run
paper_record
paper_summarize --by model.layers.0.size,model.kind,model.layers.0.recurrent \
  --metrics test_accuracy_at_best_validation,best_test_accuracy --success-at 0.9 \
  --plot-x model.layers.0.size
