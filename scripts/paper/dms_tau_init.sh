#!/usr/bin/env bash
# DMS with long initial time constants (paper Table 4, App. G): HetSynLIF synaptic
# taus drawn from N(mu, (0.1 mu)^2), mu = 100 | 200 | 400 ms, 100-neuron network of
# configs/dms.toml, feed-forward and recurrent (the paper does not say which) x
# seeds. Per run, of the first hidden layer's input synapses per channel group (cue,
# noise): mean tau (decays at 1 left out and counted), the tau of the mean decay,
# the median and the fraction above 700 ms; then `hetsyn eval` resets the synapses
# with tau > 700 ms and re-tests: the first layer's input synapses (Table 4's) or
# every learnable decay, to the initial mean mu or to each decay's own initial value.
# Recorded in docs/results/dms_tau_init.csv.
#
#   scripts/paper/dms_tau_init.sh [--full] [--seeds N] [--jobs N] [--threads T] [--out DIR] [--dry-run]
#
# Every run: the paper's 1000 iterations of batch 32, 256/512 validation/test trials.
# Default and --full: the paper's 5 runs per column (30 runs).
set -euo pipefail
name=dms_tau_init
source "$(dirname "$0")/lib.sh"
paper_args "$@"
seeds=$(paper_seeds 5 5)
paper_grid configs/dms.toml \
  --vary model.layers.0.recurrent=false,true \
  --vary 'model.tau_init={ dist = "normal", mean = 0.1, std = 0.01 },{ dist = "normal", mean = 0.2, std = 0.02 },{ dist = "normal", mean = 0.4, std = 0.04 }' \
  --vary seed="$seeds"
figures=test_accuracy_at_best_validation,best_validation_accuracy
for group in cue noise left_cue right_cue; do
  for stat in mean_ms mean_decay_tau_ms median_ms fraction_above infinite count; do
    figures="$figures,input_tau_at_best_validation.$group.$stat"
  done
done
for reset in first_input_to_mean first_input_to_initial all_to_mean long_tau; do
  figures="$figures,eval.clean+reset_$reset.test_accuracy,eval.clean+reset_$reset.reset_fraction"
done
paper_results model.layers.0.recurrent,model.tau_init.mean "$figures"
paper_run
paper_eval --reset-synapses first-input,all --reset-to mean,initial
paper_record
paper_summarize --by model.layers.0.recurrent,model.tau_init.mean \
  --metrics "test_accuracy_at_best_validation,eval.clean+reset_first_input_to_mean.test_accuracy,eval.clean+reset_first_input_to_mean.reset_fraction,input_tau_at_best_validation.cue.mean_ms,input_tau_at_best_validation.noise.mean_ms"
