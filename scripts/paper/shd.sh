#!/usr/bin/env bash
# Spiking Heidelberg Digits (paper §4.3): the four models on the authors' SHD setting
# (configs/shd.toml: 700 -> 128R -> 64R -> 20, AdamW, warm-up + cosine) x seeds, then
# the robustness evaluations of each best checkpoint: every input spike deleted with
# probability p, and time warps (spike times x alpha before binning). The table gives per
# model the test accuracy at best validation, last and best-on-test, and under each
# perturbation. Needs the official shd_train.h5 and shd_test.h5 in DATA (default data/shd).
#
#   scripts/paper/shd.sh [--data DIR] [--full] [--jobs N] [--threads T] [--out DIR] [--dry-run]
#
# Every run: the paper's 100 epochs over all training samples but the held-out 10 %
# (the schedule spanning 40 epochs), deletion p = 0.1 ... 0.5 and 20 random warps with
# log2 alpha ~ U(-0.5, 0.5) (the table gives their mean).
# Default: 3 seeds (12 runs), about 18 h on 2 cores (estimated: an SHD-sized
# epoch takes 50-60 s with 2 threads). --full: 10 seeds (40 runs), about 60 h. This
# belongs on a cluster: scripts/slurm_array.sh runs the configs this writes (--dry-run).
set -euo pipefail
name=shd
data=data/shd
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data) [ $# -ge 2 ] || { echo "shd.sh: --data needs a directory" >&2; exit 2; }; data=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
source "$(dirname "$0")/lib.sh"
paper_args ${args[@]+"${args[@]}"}
if [ ! -f "$data/shd_train.h5" ] || [ ! -f "$data/shd_test.h5" ]; then
  [ "$dry_run" = 1 ] || paper_die "no $data/shd_train.h5 and shd_test.h5: the official SHD files are needed (see data/README.md), or give --data DIR"
else
  data=$(cd "$data" && pwd)
fi
seeds=$(paper_seeds 3 10)
deletion=0.1,0.2,0.3,0.4,0.5
paper_grid configs/shd.toml \
  --set "task.data_dir=\"$data\"" --set "task.cache_dir=\"$(cd "$out" && pwd)/cache\"" \
  --vary model.kind=hetsynlif,hetneulif,homneulif,homneualif \
  --vary seed="$seeds"
paper_run
for run in "$out"/runs/*/; do
  [ -f "$run/summary.json" ] || continue
  [ -f "$run/checkpoints/best.eval.csv" ] && continue
  "$bin" -q eval --checkpoint "$run/checkpoints/best.safetensors" --threads "$threads" \
    --delete-prob "$deletion" --time-warp-random 20 > /dev/null
done
deletion_columns=$(echo "$deletion" | tr ',' '\n' | sed 's/.*/eval.delete_prob=&.test_accuracy/' | paste -sd,)
paper_summarize --by model.kind \
  --metrics "test_accuracy_at_best_validation,last_test_accuracy,best_test_accuracy,$deletion_columns,eval.time_warp_random_mean.test_accuracy"
