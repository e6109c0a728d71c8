#!/usr/bin/env bash
# DMS with limited neurons (paper §4.2): hidden layer of 5, 20, 50, 100 neurons x
# hetsynlif, hetneulif, homneulif, homneualif x feed-forward/recurrent x seeds, on
# configs/dms.toml; the table gives per cell the success rate (runs with test
# accuracy at best validation >= 90 %) and the mean ± sd accuracy; runs/summary_lines.png
# plots that accuracy against the hidden size.
#
#   scripts/paper/dms_neurons.sh [--full] [--jobs N] [--threads T] [--out DIR] [--dry-run]
#
# Every run: the paper's 1000 iterations of batch 32, 256/512 validation/test trials.
# Default: 3 seeds (96 runs), 24 min with --jobs 2 on 2 cores (measured 2026-11-30).
# --full: 10 seeds (320 runs), about 81 min the same way (estimated from the default).
set -euo pipefail
name=dms_neurons
source "$(dirname "$0")/lib.sh"
paper_args "$@"
seeds=$(paper_seeds 3 10)
paper_grid configs/dms.toml \
  --vary model.layers.0.size=5,20,50,100 \
  --vary model.kind=hetsynlif,hetneulif,homneulif,homneualif \
  --vary model.layers.0.recurrent=false,true \
  --vary seed="$seeds"
paper_run
paper_summarize --by model.layers.0.size,model.kind,model.layers.0.recurrent \
  --metrics test_accuracy_at_best_validation,best_test_accuracy --success-at 0.9 \
  --plot-x model.layers.0.size
