#!/usr/bin/env bash
# Copies the figures of docs/reproduction.md from the results of the paper scripts
# (their default output directories under RESULTS, default results/paper) into OUT
# (default docs/figures), as PNG and SVG. Each paper script draws its figure with
# `hetsyn summarize --plot-x` into <out>/runs/summary_lines.{png,svg}; re-running a
# script whose runs are complete only redraws it. Missing results are named and skipped.
#
#   scripts/paper/figures.sh [--results DIR] [--out DIR]
#
#   dms_neurons.{png,svg}        DMS test accuracy (selected on validation) against hidden
#                                size, a line per model and topology (dms_neurons.sh)
#   dms_decay_masking.{png,svg}  DMS test accuracy against the fraction of frozen decays,
#                                a line per delay (dms_decay_masking.sh)
#   dms_tau_init.{png,svg}       median learned tau of first-layer input synapses from cue
#                                and from noise channels against the initial mean tau
#                                (dms_tau_init.sh)
#   pattern.{png,svg}            pattern-generation test MSE against background noise rate,
#                                a line per model and topology (pattern.sh)
set -euo pipefail
usage() { awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0" | sed 's/^# \{0,1\}//'; }
results=results/paper out=docs/figures
while [ $# -gt 0 ]; do
  case "$1" in
    --results) [ $# -ge 2 ] || { echo "figures.sh: --results needs a directory" >&2; exit 2; }; results=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || { echo "figures.sh: --out needs a directory" >&2; exit 2; }; out=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "figures.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
missing=0
for name in dms_neurons dms_decay_masking dms_tau_init pattern; do
  figure="$results/$name/runs/summary_lines"
  if [ ! -f "$figure.png" ] || [ ! -f "$figure.svg" ]; then
    echo "figures.sh: no $figure.{png,svg}: run scripts/paper/$name.sh (again) first; skipped" >&2
    missing=$((missing + 1))
    continue
  fi
  cp "$figure.png" "$out/$name.png"
  cp "$figure.svg" "$out/$name.svg"
  echo "$out/$name.png $out/$name.svg"
done
[ "$missing" = 0 ]
