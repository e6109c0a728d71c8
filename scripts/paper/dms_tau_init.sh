#!/usr/bin/env bash
# DMS with long initial time constants (paper Table 4): HetSynLIF synaptic taus drawn
# from N(100 | 200 | 400 ms, 10 % sd), recurrent 100-neuron network of configs/dms.toml
# x seeds. After training, `hetsyn eval --reset-long-tau` re-evaluates the best
# checkpoint with every decay whose tau exceeds output.tau_threshold (700 ms) reset to
# its initial value. Table per initial mean: accuracy, accuracy after the reset, the
# fraction of learnable decays reset (tau > 700 ms), and the mean and median learned tau
# (ms) of the first layer's input synapses from cue and from noise channels and the
# fraction of them above 700 ms (decays near 1 make the means huge; the medians are robust).
#
#   scripts/paper/dms_tau_init.sh [--full] [--jobs N] [--threads T] [--out DIR] [--dry-run]
#
# Every run: the paper's 1000 iterations of batch 32, 256/512 validation/test trials.
# Default: 3 seeds (9 runs), 16 min with --jobs 2 on 2 cores (measured 2026-11-30).
# --full: 10 seeds (30 runs), about 54 min the same way (estimated from the default).
set -euo pipefail
name=dms_tau_init
source "$(dirname "$0")/lib.sh"
paper_args "$@"
seeds=$(paper_seeds 3 10)
paper_grid configs/dms.toml \
  --vary 'model.tau_init={ dist = "normal", mean = 0.1, std = 0.01 },{ dist = "normal", mean = 0.2, std = 0.02 },{ dist = "normal", mean = 0.4, std = 0.04 }' \
  --vary seed="$seeds"
paper_run
paper_eval --reset-long-tau
reset=eval.clean+reset_long_tau
paper_summarize --by model.tau_init.mean \
  --metrics "test_accuracy_at_best_validation,$reset.test_accuracy,$reset.reset_fraction,input_tau_at_best_validation.cue.mean_ms,input_tau_at_best_validation.noise.mean_ms,input_tau_at_best_validation.cue.median_ms,input_tau_at_best_validation.noise.median_ms,input_tau_at_best_validation.cue.fraction_above,input_tau_at_best_validation.noise.fraction_above" \
  --plot-x model.tau_init.mean \
  --plot-y input_tau_at_best_validation.cue.median_ms,input_tau_at_best_validation.noise.median_ms
