#!/usr/bin/env bash
# DMS decay masking (paper §4.2): a fraction 0, 0.2, 0.4, 0.6, 0.8 of the learnable
# decays of HetSynLIF frozen at their initial value (model.frozen_decay_fraction;
# seeded mask) in the recurrent 100-neuron network of configs/dms.toml, with the
# 800 ms delay and the long 2500 ms one, x seeds; the table gives per delay and
# fraction the success rate (accuracy >= 90 %) and mean ± sd accuracy.
#
#   scripts/paper/dms_decay_masking.sh [--full] [--jobs N] [--threads T] [--out DIR] [--dry-run]
#
# Every run: the paper's 1000 iterations of batch 32, 256/512 validation/test trials.
# Default: 3 seeds x fractions 0 and 0.8 only (12 runs), 30 min with --jobs 2 on 2 cores
# (measured 2026-11-30). --full: 10 seeds x all five fractions (100 runs), about 4 h the
# same way (estimated from the default).
set -euo pipefail
name=dms_decay_masking
source "$(dirname "$0")/lib.sh"
paper_args "$@"
seeds=$(paper_seeds 3 10)
if [ "$full" = 1 ]; then fractions=0,0.2,0.4,0.6,0.8; else fractions=0,0.8; fi
paper_grid configs/dms.toml \
  --vary task.delay=0.8,2.5 \
  --vary model.frozen_decay_fraction="$fractions" \
  --vary seed="$seeds"
paper_run
paper_summarize --by task.delay,model.frozen_decay_fraction \
  --metrics test_accuracy_at_best_validation,best_test_accuracy --success-at 0.9 \
  --plot-x model.frozen_decay_fraction
