#!/usr/bin/env bash
# Spiking Heidelberg Digits (paper §4.3): the four models on the authors' SHD setting
# (configs/shd.toml: 700 -> 128R -> 64R -> 20, AdamW, warm-up + cosine) x seeds, then
# the robustness evaluations of each run's reported checkpoint: every input spike deleted
# with probability p, and time warps (spike times x alpha before binning). The table gives
# per model the test accuracy at best validation, last and best-on-test, and under each
# perturbation. Needs the official shd_train.h5 and shd_test.h5 in DATA (default data/shd).
#
#   scripts/paper/shd.sh [--protocol heldout|authors] [--data DIR] [--full] [--jobs N]
#                        [--threads T] [--out DIR] [--dry-run]
#
# --protocol heldout (default): configs/shd.toml, 10 % of the training samples held out
#   for validation; the model is selected on them (an honest estimate); the evaluations
#   are of checkpoints/best.safetensors.
# --protocol authors: configs/shd_authors.toml, the paper's protocol: every training
#   sample trained on, no validation set; compare best_test_accuracy (selected on the
#   test set, optimistic) with the paper; the evaluations are of
#   checkpoints/best_on_test.safetensors (last.safetensors without it). Results go to
#   results/paper/shd_authors[-full].
# Every run: the paper's 100 epochs (the schedule spanning 40), deletion p = 0.1 ... 0.5
# and 20 random warps with log2 alpha ~ U(-0.5, 0.5) (the table gives their mean).
# Default: 3 seeds (12 runs), about 18 h on 2 cores (estimated: an SHD-sized epoch
# takes 50-60 s with 2 threads; authors: 11 % more samples per epoch). --full: 10 seeds
# (40 runs), about 60 h. This belongs on a cluster: scripts/slurm_array.sh runs the
# configs this writes (--dry-run).
set -euo pipefail
name=shd
data=data/shd
protocol=heldout
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data) [ $# -ge 2 ] || { echo "shd.sh: --data needs a directory" >&2; exit 2; }; data=$2; shift 2 ;;
    --protocol) [ $# -ge 2 ] || { echo "shd.sh: --protocol needs heldout or authors" >&2; exit 2; }; protocol=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$protocol" in
  heldout) base=configs/shd.toml figures=test_accuracy_at_best_validation,last_test_accuracy,best_test_accuracy ;;
  authors) base=configs/shd_authors.toml figures=best_test_accuracy,last_test_accuracy name=shd_authors ;;
  *) echo "shd.sh: --protocol must be heldout or authors, not '$protocol'" >&2; exit 2 ;;
esac
source "$(dirname "$0")/lib.sh"
paper_args ${args[@]+"${args[@]}"}
if [ ! -f "$data/shd_train.h5" ] || [ ! -f "$data/shd_test.h5" ]; then
  [ "$dry_run" = 1 ] || paper_die "no $data/shd_train.h5 and shd_test.h5: the official SHD files are needed (see data/README.md), or give --data DIR"
else
  data=$(cd "$data" && pwd)
fi
seeds=$(paper_seeds 3 10)
deletion=0.1,0.2,0.3,0.4,0.5
paper_grid "$base" \
  --set "task.data_dir=\"$data\"" --set "task.cache_dir=\"$(cd "$out" && pwd)/cache\"" \
  --vary model.kind=hetsynlif,hetneulif,homneulif,homneualif \
  --vary seed="$seeds"
paper_run
paper_eval --delete-prob "$deletion" --time-warp-random 20
deletion_columns=$(echo "$deletion" | tr ',' '\n' | sed 's/.*/eval.delete_prob=&.test_accuracy/' | paste -sd,)
paper_summarize --by model.kind \
  --metrics "$figures,$deletion_columns,eval.time_warp_random_mean.test_accuracy"
