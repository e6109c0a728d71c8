#!/usr/bin/env bash
# DMS made harder (paper §4.2): a 2500 ms delay (task.delay = 2.5, noise 10 Hz) and
# added input noise (task.noise_rate = 20, delay 800 ms), each for the four models
# with the recurrent 100-neuron network of configs/dms.toml x seeds; the table gives
# per condition and model the success rate (accuracy >= 90 %) and mean ± sd accuracy.
#
#   scripts/paper/dms_delay_noise.sh [--full] [--jobs N] [--threads T] [--out DIR] [--dry-run]
#
# Every run: the paper's 1000 iterations of batch 32, 256/512 validation/test trials.
# Default: 3 seeds (24 runs), 28 min with --jobs 2 on 2 cores (measured 2026-11-30).
# --full: 10 seeds (80 runs), about 94 min the same way (estimated from the default).
set -euo pipefail
name=dms_delay_noise
source "$(dirname "$0")/lib.sh"
paper_args "$@"
seeds=$(paper_seeds 3 10)
for condition in task.delay=2.5 task.noise_rate=20; do
  paper_grid configs/dms.toml \
    --vary "$condition" \
    --vary model.kind=hetsynlif,hetneulif,homneulif,homneualif \
    --vary seed="$seeds"
done
paper_run
paper_summarize --by task.delay,task.noise_rate,model.kind \
  --metrics test_accuracy_at_best_validation,best_test_accuracy --success-at 0.9
