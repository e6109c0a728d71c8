#!/usr/bin/env bash
# Pattern generation (paper §4.1): the four models x feed-forward/recurrent x seeds,
# then a table of the final test MSE (mean ± sd over seeds) per model and topology.
#
#   scripts/pattern_models.sh [--seeds N] [--jobs J] [--out DIR] [--iterations N]
#
# Each run uses one thread; J runs go at once. Runs whose summary.json exists are
# skipped, so an interrupted sweep continues where it stopped.
set -euo pipefail
seeds=5 jobs=2 out=results/pattern-models iterations=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
bin=${HETSYN_BIN:-target/release/hetsyn}
[ -n "${HETSYN_BIN:-}" ] || cargo build --release --quiet
mkdir -p "$out"
runs=()
for model in hetsynlif hetneulif homneulif homneualif; do
  for topology in ff rec; do
    for seed in $(seq 0 $((seeds - 1))); do
      runs+=("$model $topology $seed")
    done
  done
done
printf '%s\n' "${runs[@]}" | xargs -P "$jobs" -L 1 sh -c '
  model=$0 topology=$1 seed=$2 out='"$out"' bin='"$bin"' iterations='"$iterations"'
  dir="$out/$model-$topology-seed$seed"
  [ -f "$dir/summary.json" ] && exit 0
  recurrent=false; [ "$topology" = rec ] && recurrent=true
  extra=""; [ -n "$iterations" ] && extra="--set train.iterations=$iterations"
  "$bin" -q train --config configs/pattern.toml --out "$dir" --threads 1 --seed "$seed" --no-progress --no-plots \
    --set model.kind=$model --set model.layers.0.recurrent=$recurrent $extra > /dev/null
  echo "done $dir"
'
echo
echo "| model | topology | final test MSE (mean ± sd over $seeds seeds) | distance 2-1 | distance 3-2 |"
echo "|---|---|---|---|---|"
for model in hetsynlif hetneulif homneulif homneualif; do
  for topology in ff rec; do
    for seed in $(seq 0 $((seeds - 1))); do
      f="$out/$model-$topology-seed$seed/summary.json"
      mse=$(grep -o '"last_test_loss": [^,]*' "$f" | awk '{print $2}')
      d21=$(awk '/"last_test_metrics"/,/}/' "$f" | grep -o '"distance_2_1": [^,}]*' | awk '{print $2}')
      d32=$(awk '/"last_test_metrics"/,/}/' "$f" | grep -o '"distance_3_2": [^,}]*' | awk '{print $2}')
      echo "$mse $d21 $d32"
    done | awk -v m=$model -v t=$topology '
      { for (k = 1; k <= 3; k++) { s[k] += $k; q[k] += $k * $k } n++ }
      END {
        for (k = 1; k <= 3; k++) { mean[k] = s[k] / n; sd[k] = (n > 1) ? sqrt((q[k] - n * mean[k] ^ 2) / (n - 1)) : 0; if (sd[k] != sd[k]) sd[k] = 0 }
        printf "| %s | %s | %.4f ± %.4f | %.3f ± %.3f | %.3f ± %.3f |\n", m, t, mean[1], sd[1], mean[2], sd[2], mean[3], sd[3]
      }'
  done
done
