#!/usr/bin/env bash
# DMS decay masking (paper §4.2): a fraction 0, 0.2, 0.4, 0.6, 0.8 of the learnable
# decays of HetSynLIF frozen at their initial value (model.frozen_decay_fraction;
# seeded mask) in the recurrent 100-neuron network of configs/dms.toml, with the
# 800 ms delay and the long 2500 ms one, x seeds; the table gives per delay and
# fraction the success rate (accuracy >= 90 %) and mean ± sd accuracy.
#
#   scripts/paper/dms_decay_masking.sh [--full] [--jobs N] [--threads T] [--out DIR] [--dry-run]
#
# Default: 2 seeds (20 runs), 200 iterations of batch 16, 128/256 validation/test trials
# (about 12 min on 2 cores). --full: 10 seeds (100 runs) of 1000 iterations of batch 32.
set -euo pipefail
name=dms_decay_masking usage_lines=2,11
source "$(dirname "$0")/lib.sh"
paper_args "$@"
seeds=$(paper_seeds $([ "$full" = 1 ] && echo 10 || echo 2))
paper_grid configs/dms.toml "${dms_sets[@]}" \
  --vary task.delay=0.8,2.5 \
  --vary model.frozen_decay_fraction=0,0.2,0.4,0.6,0.8 \
  --vary seed="$seeds"
paper_run
paper_summarize --by task.delay,model.frozen_decay_fraction \
  --metrics test_accuracy_at_best_validation,best_test_accuracy --success-at 0.9
