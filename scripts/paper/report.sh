#!/usr/bin/env bash
# Redraws the reproduction report from the results kept as data, without running
# anything: the tables of docs/reproduction.md (its <!-- table:NAME --> blocks) and
# the figures in docs/figures, from docs/results/*.csv (written by the
# scripts/paper/*.sh experiments through `hetsyn record`).
#
#   scripts/paper/report.sh
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=${HETSYN_BIN:-}
if [ -z "$bin" ]; then
  (cd "$repo" && cargo build --release --quiet)
  bin="$repo/target/release/hetsyn"
fi
cd "$repo"
"$bin" -q report --results docs/results --doc docs/reproduction.md --figures docs/figures
