#!/usr/bin/env bash
# Counts the status file of a sweep (scripts/sweep.sh) or of a job array
# (scripts/slurm_array.sh: <out>/slurm-<job id>.status):
#
#   scripts/sweep_tally.sh STATUS_FILE [--label TEXT] [--final]
#
# The file has a line per event, tab separated: task, state, config, run
# directory, detail. A task's state is its last outcome (done, skipped or
# failed), else running, else queued. Prints `TEXT: D done, S skipped, F failed
# (of N)` (with `Q queued, R running` while any are) and a `failed: CONFIG:
# reason` line per failed config. With --final (the sweep or array has ended), a
# task without an outcome counts as failed: it was cancelled, killed or out of
# time. Exits with status 1 if any failed.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
case "$1" in -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
status=$1; shift
label="sweep" final=0
while [ $# -gt 0 ]; do
  case "$1" in
    --label) [ $# -ge 2 ] || { echo "sweep_tally.sh: --label needs a value" >&2; exit 2; }; label=$2; shift 2 ;;
    --final) final=1; shift ;;
    *) echo "sweep_tally.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -r "$status" ] || { echo "sweep_tally.sh: cannot read $status" >&2; exit 2; }
awk -F '\t' -v label="$label" -v final="$final" '
  function rank(state) { return state == "queued" ? 0 : state == "running" ? 1 : 2 }
  $1 == "task" || NF < 4 { next }
  {
    if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1; config[$1] = $3 }
    if (!($1 in state) || rank($2) >= rank(state[$1])) { state[$1] = $2; detail[$1] = $5 }
  }
  END {
    for (k = 1; k <= n; k++) {
      t = order[k]; s = state[t]
      if (s != "done" && s != "skipped" && s != "failed" && final) {
        s = "failed"; detail[t] = "no outcome recorded (" state[t] " when the array or sweep ended: cancelled, killed or out of time?)"
      }
      count[s]++
      if (s == "failed") failed[++f] = "  failed: " config[t] ": " detail[t]
    }
    line = label ": " count["done"] + 0 " done, " count["skipped"] + 0 " skipped, " count["failed"] + 0 " failed"
    if (count["queued"] + count["running"] > 0) line = line ", " count["queued"] + 0 " queued, " count["running"] + 0 " running"
    print line " (of " n ")"
    for (k = 1; k <= f; k++) print failed[k]
    exit count["failed"] > 0
  }' "$status"
