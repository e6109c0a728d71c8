#!/usr/bin/env bash
# Redraws the reproduction report from the results kept as data, without running
# anything: the tables of docs/reproduction.md (its <!-- table:NAME --> blocks) and
# the figures in docs/figures, from docs/results/*.csv (written by the
# scripts/paper/*.sh experiments through `hetsyn record`), and the SHD figures (Fig. 4,
# A4, A5) from docs/results/shd_*.csv (`hetsyn figures shd`) when SHD runs are recorded.
#
#   scripts/paper/report.sh
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=${HETSYN_BIN:-}
if [ -z "$bin" ]; then
  (cd "$repo" && cargo build --release --quiet)
  bin="$repo/target/release/hetsyn"
fi
cd "$repo"
"$bin" -q report --results docs/results --doc docs/reproduction.md --doc README.md --figures docs/figures
for experiment in shd shd_authors; do
  if [ -f docs/results/shd_deletion.csv ] && grep -q "^$experiment," docs/results/shd_deletion.csv; then
    "$bin" -q figures shd --results docs/results --out docs/figures --experiment "$experiment" > /dev/null
  fi
done
