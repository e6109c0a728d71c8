#!/usr/bin/env bash
# Runs one config of a sweep into its run directory (used by sweep.sh and by the
# batch script of slurm_array.sh; $HETSYN_BIN is the hetsyn binary):
#
#   scripts/sweep_run.sh CONFIG RUN_DIR THREADS [--rerun-changed] [--status FILE] [--task ID] [-- extra train args]
#
# `hetsyn train --out RUN_DIR --if-exists resume` (with --rerun-changed: rerun)
# decides, under the run's lock, what becomes of a run that is there: a finished
# run of the same config is skipped, an unfinished one resumed, a run of another
# config refused naming the differences (or moved aside and trained again), a
# run in use refused. The outcome (done, skipped or failed) is printed and, with
# --status, appended to FILE (after a `running` line) as
# `ID<TAB>outcome<TAB>CONFIG<TAB>RUN_DIR<TAB>detail`.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
config=$1 run=$2 threads=$3; shift 3
if_exists=resume status="" task=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rerun-changed) if_exists=rerun; shift ;;
    --status|--task) [ $# -ge 2 ] || { echo "sweep_run.sh: $1 needs a value" >&2; exit 2; } ;;&
    --status) status=$2; shift 2 ;;
    --task) task=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "sweep_run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
bin=${HETSYN_BIN:?sweep_run.sh: set HETSYN_BIN to the hetsyn binary}

# record STATE DETAIL: prints an outcome and appends the event to the status file
record() {
  local detail=${2//$'\t'/ }
  detail=${detail//$'\n'/ }
  case "$1" in
    failed) echo "FAILED $run ($config): $detail" >&2 ;;
    running) ;;
    *) echo "$1 $run${detail:+ ($detail)}" ;;
  esac
  if [ -n "$status" ]; then
    { flock 9; printf '%s\t%s\t%s\t%s\t%s\n' "$task" "$1" "$config" "$run" "$detail" >&9; } 9>>"$status"
  fi
}

stdout=$(mktemp "${TMPDIR:-/tmp}/hetsyn-run.XXXXXX") stderr=$(mktemp "${TMPDIR:-/tmp}/hetsyn-run.XXXXXX")
trap 'rm -f "$stdout" "$stderr"' EXIT
# SIGTERM (scancel, a time limit) or SIGINT reaches hetsyn too, which stops with a
# resumable checkpoint; this script waits for it and records the outcome
interrupted=""
trap 'interrupted=" (interrupted: run it again to resume)"' TERM INT
record running ""
# stderr is shown and kept for the reason of a failure; the copying tee outlives the signal
set +e
"$bin" train --config "$config" --out "$run" --threads "$threads" --no-progress --if-exists "$if_exists" \
  ${extra[@]+"${extra[@]}"} 2>&1 > "$stdout" | { trap '' TERM INT; exec tee "$stderr"; } >&2
rc=${PIPESTATUS[0]}
set -e
grep -v "^skipped " "$stdout" || true
if [ "$rc" != 0 ]; then
  reason=$(sed -n 's/^error: //p' "$stderr" | tail -n 1 | cut -c 1-600)
  case "$reason" in *"--if-exists rerun"*) reason="$reason (here: --rerun-changed)" ;; esac
  record failed "${reason:-hetsyn train exited with status $rc}$interrupted"
  exit 1
elif grep -q '^skipped ' "$stdout"; then
  record skipped "finished"
elif grep -q '^resuming ' "$stdout"; then
  record done "resumed"
elif grep -q '^moved ' "$stdout"; then
  record done "$(sed -n 's/^moved .* aside to \(.*\): its config differed$/its config differed: the old run is in \1/p' "$stdout")"
else
  record done ""
fi
