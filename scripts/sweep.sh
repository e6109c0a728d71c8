#!/usr/bin/env bash
# Runs every *.toml of a config directory, N at a time, each into its own run
# directory <out>/<config stem>; runs already complete (summary.json present) are
# skipped and interrupted ones are resumed, so the same command continues a sweep.
#
#   scripts/sweep.sh CONFIG_DIR [--jobs N] [--out DIR] [--threads T] [--rerun-changed] [-- extra train args]
#
# --out defaults to results/<name of CONFIG_DIR>; --threads (default: cores / jobs)
# is given to each run. Before skipping or resuming a run, its config.toml is
# compared with the config (both resolved, the extra arguments applied): a run
# whose config changed is refused (counted as failed), or with --rerun-changed
# moved aside to <run>.old-<UTC time> and trained again. The sweep ends with a
# done / skipped / failed tally naming every failed config, and exits with
# status 1 if any failed. $HETSYN_BIN, when set, is the binary (nothing is built).
set -euo pipefail
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
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
# each run records its outcome in $status; a failed run does not stop the others
printf '%s\n' "${configs[@]}" | xargs -P "$jobs" -I{} bash -c '
  config="$1" out="$2" threads="$3" status="$4"; shift 4
  "$0" "$config" "$out/$(basename "$config" .toml)" "$threads" --status "$status" "$@" || true
' "$here/sweep_run.sh" {} "$out" "$threads" "$status" ${rerun[@]+"${rerun[@]}"} -- ${extra[@]+"${extra[@]}"}
count() { awk -F '\t' -v o="$1" '$1 == o' "$status" | wc -l; }
done_count=$(count done) skipped=$(count skipped) failed=$(count failed)
missing=$(( ${#configs[@]} - done_count - skipped - failed ))
echo "sweep $config_dir: $done_count done, $skipped skipped, $((failed + missing)) failed (of ${#configs[@]})"
awk -F '\t' '$1 == "failed" { print "  failed: " $2 ": " $3 }' "$status"
[ "$missing" = 0 ] || echo "  failed: $missing configs recorded no outcome (interrupted?)"
[ $((failed + missing)) = 0 ]
