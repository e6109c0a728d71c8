#!/usr/bin/env bash
# Runs every *.toml of a config directory, N at a time, each into its own run
# directory <out>/<config stem>; runs already complete (summary.json present) are
# skipped and interrupted ones are resumed, so the same command continues a sweep.
#
#   scripts/sweep.sh CONFIG_DIR [--jobs N] [--out DIR] [--threads T] [-- extra train args]
#
# --out defaults to results/<name of CONFIG_DIR>; --threads (default: cores / jobs)
# is given to each run.
set -euo pipefail
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
config_dir=${1%/}; shift
jobs=1 out="" threads=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "sweep.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -d "$config_dir" ] || { echo "sweep.sh: $config_dir is not a directory" >&2; exit 2; }
case "$jobs" in ''|*[!0-9]*|0) echo "sweep.sh: --jobs needs a positive number, not '$jobs'" >&2; exit 2 ;; esac
out=${out:-results/$(basename "$config_dir")}
cores=$(nproc 2>/dev/null || echo 1)
threads=${threads:-$(( cores / jobs > 0 ? cores / jobs : 1 ))}
bin=${HETSYN_BIN:-}
if [ -z "$bin" ]; then
  (cd "$(dirname "$0")/.." && cargo build --release --quiet)
  bin="$(cd "$(dirname "$0")/.." && pwd)/target/release/hetsyn"
fi
shopt -s nullglob
configs=("$config_dir"/*.toml)
[ ${#configs[@]} -gt 0 ] || { echo "sweep.sh: no *.toml in $config_dir" >&2; exit 2; }
mkdir -p "$out"
export bin out threads
printf '%s\n' "${configs[@]}" | xargs -P "$jobs" -I{} bash -c '
  config="$1"; shift
  run="$out/$(basename "$config" .toml)"
  if [ -f "$run/summary.json" ]; then echo "skip $run (complete)"; exit 0; fi
  if [ -f "$run/config.toml" ]; then
    "$bin" -q train --resume "$run" --threads "$threads" --no-progress "$@" && echo "done $run (resumed)"
  else
    "$bin" -q train --config "$config" --out "$run" --threads "$threads" --no-progress "$@" && echo "done $run"
  fi
' _ {} "${extra[@]}"
