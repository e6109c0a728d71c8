#!/usr/bin/env bash
# DMS under longer delays and noise (paper Fig. A3): 100 recurrent neurons of
# configs/dms.toml x hetsynlif, hetneulif, homneualif, homneulif x seeds, one
# change at a time:
#   delay sweep:  task.delay = 0.8 (the recipe), 1.2, 1.6, 2.0, 2.5 s;
#   noise sweep, both readings of the paper's "addition noise", 0-20 Hz:
#     addition:   task.addition_noise_rate = 5, 10, 15, 20 Hz of Poisson spikes added
#                 on every input channel (0 Hz is the recipe);
#     channels:   task.noise_rate = 0, 5, 15, 20 Hz on the 10 noise channels
#                 (10 Hz is the recipe).
# Noise is present in training and evaluation. Every run records its iterations to
# reach 95 % training accuracy (10-iteration moving average; summary.json
# iterations_to_95). Recorded in docs/results/dms_delay_noise.csv.
#
#   scripts/paper/dms_delay_noise.sh [--full] [--seeds N] [--jobs N] [--threads T] [--out DIR] [--dry-run]
#
# Every run: the paper's 1000 iterations of batch 32, 256/512 validation/test trials.
# Default: 3 seeds (156 runs). --full: the paper's 50 runs per point (2,600 runs).
set -euo pipefail
name=dms_delay_noise
source "$(dirname "$0")/lib.sh"
paper_args "$@"
seeds=$(paper_seeds 3 50)
models=hetsynlif,hetneulif,homneualif,homneulif
for condition in task.delay=0.8,1.2,1.6,2.0,2.5 task.addition_noise_rate=5,10,15,20 task.noise_rate=0,5,15,20; do
  paper_grid configs/dms.toml --vary "$condition" --vary model.kind="$models" --vary seed="$seeds"
done
paper_results task.delay,task.addition_noise_rate,task.noise_rate,model.kind \
  test_accuracy_at_best_validation,last_test_accuracy,best_test_accuracy,best_validation_accuracy,iterations_to_95
paper_run
paper_record
paper_summarize --by task.delay,task.addition_noise_rate,task.noise_rate,model.kind \
  --metrics test_accuracy_at_best_validation,iterations_to_95 --success-at 0.9
