#!/usr/bin/env bash
# DMS decay masking (paper Fig. 3C): HetSynLIF, 100 recurrent neurons of
# configs/dms.toml; a seeded fraction of all learnable decays
# (model.frozen_decay_fraction) keeps its initial value through training:
# fractions 0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0 x delay 0.8 s (the paper's DMS) and
# 2.5 s x seeds. Table: success rate (test accuracy at best validation >= 90 %) and
# mean ± sd accuracy per delay and fraction. Recorded in docs/results/dms_decay_masking.csv.
#
#   scripts/paper/dms_decay_masking.sh [--full] [--seeds N] [--jobs N] [--threads T] [--out DIR] [--dry-run]
#
# Every run: the paper's 1000 iterations of batch 32, 256/512 validation/test trials.
# Default: 3 seeds (42 runs). --full: the paper's 50 runs per point (700 runs).
set -euo pipefail
name=dms_decay_masking
source "$(dirname "$0")/lib.sh"
paper_args "$@"
seeds=$(paper_seeds 3 50)
paper_grid configs/dms.toml \
  --vary task.delay=0.8,2.5 \
  --vary model.frozen_decay_fraction=0,0.2,0.4,0.6,0.8,0.9,1.0 \
  --vary seed="$seeds"
paper_results task.delay,model.frozen_decay_fraction \
  test_accuracy_at_best_validation,last_test_accuracy,best_test_accuracy,best_validation_accuracy,iterations_to_95
paper_run
paper_record
paper_summarize --by task.delay,model.frozen_decay_fraction \
  --metrics test_accuracy_at_best_validation,best_test_accuracy --success-at 0.9 \
  --plot-x model.frozen_decay_fraction
