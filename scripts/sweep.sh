#!/usr/bin/env bash
# Runs every *.toml of a config directory, N at a time, each into its own run
# directory <out>/<config stem> (scripts/sweep_run.sh, that is `hetsyn train
# --if-exists resume`): runs already finished are skipped and interrupted ones
# resumed, so the same command continues a sweep.
#
#   scripts/sweep.sh CONFIG_DIR [--jobs N] [--out DIR] [--threads T] [--rerun-changed] [-- extra train args]
#
# --out defaults to results/<name of CONFIG_DIR>; --threads (default: cores / jobs)
# is given to each run. A run whose config.toml differs from its config (the extra
# arguments applied, `threads` aside) is refused naming the differences (counted
# as failed), or with --rerun-changed moved aside to <run>.old-<UTC time> and
# trained again; a run another process is training is refused. The sweep ends
# with a done / skipped / failed tally naming every failed config, and exits with
# status 1 if any failed. $HETSYN_BIN, when set, is the binary (nothing is built).
set -euo pipefail
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
config_dir=${1%/}; shift
jobs=1 out="" threads="" rerun=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs|--out|--threads) [ $# -ge 2 ] || { echo "sweep.sh: $1 needs a value" >&2; exit 2; } ;;&
    --jobs) jobs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rerun-changed) rerun=(--rerun-changed); shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) echo "sweep.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -d "$config_dir" ] || { echo "sweep.sh: $config_dir is not a directory" >&2; exit 2; }
case "$jobs" in ''|*[!0-9]*|0) echo "sweep.sh: --jobs needs a positive number, not '$jobs'" >&2; exit 2 ;; esac
case "$threads" in *[!0-9]*) echo "sweep.sh: --threads needs a number, not '$threads'" >&2; exit 2 ;; esac
out=${out:-results/$(basename "$config_dir")}
cores=$(nproc 2>/dev/null || echo 1)
threads=${threads:-$(( cores / jobs > 0 ? cores / jobs : 1 ))}
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${HETSYN_BIN:-}" ]; then
  (cd "$here/.." && cargo build --release --quiet)
  HETSYN_BIN="$here/../target/release/hetsyn"
fi
export HETSYN_BIN
shopt -s nullglob
configs=("$config_dir"/*.toml)
[ ${#configs[@]} -gt 0 ] || { echo "sweep.sh: no *.toml in $config_dir" >&2; exit 2; }
mkdir -p "$out"
status=$(mktemp "${TMPDIR:-/tmp}/hetsyn-sweep.XXXXXX")
trap 'rm -f "$status"' EXIT
for i in "${!configs[@]}"; do
  printf '%s\tqueued\t%s\t%s\t\n' "$i" "${configs[$i]}" "$out/$(basename "${configs[$i]}" .toml)" >> "$status"
done
# each run records its outcome in $status; a failed run does not stop the others
for i in "${!configs[@]}"; do printf '%s:%s\n' "$i" "${configs[$i]}"; done |
  xargs -d '\n' -P "$jobs" -I{} bash -c '
    task=${1%%:*} config=${1#*:} out="$2" threads="$3" status="$4"; shift 4
    "$0" "$config" "$out/$(basename "$config" .toml)" "$threads" --status "$status" --task "$task" "$@" || true
  ' "$here/sweep_run.sh" {} "$out" "$threads" "$status" ${rerun[@]+"${rerun[@]}"} -- ${extra[@]+"${extra[@]}"}
"$here/sweep_tally.sh" "$status" --label "sweep $config_dir" --final
