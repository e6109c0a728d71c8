#!/usr/bin/env bash
# Runs one config of a sweep into its run directory (used by sweep.sh and by the
# batch script of slurm_array.sh; $HETSYN_BIN is the hetsyn binary):
#
#   scripts/sweep_run.sh CONFIG RUN_DIR THREADS [--rerun-changed] [--status FILE] [-- extra train args]
#
# A run directory that exists is first compared with the config: both are
# resolved by `hetsyn train --print-config` (defaults filled in, the extra
# arguments applied to CONFIG, `threads` ignored). If they agree, a complete run
# (summary.json) is skipped and an interrupted one resumed; if they differ, the run
# is refused with the differing keys, or, with --rerun-changed, moved aside to
# RUN_DIR.old-<UTC time> and trained afresh. The outcome (done, skipped or failed)
# is printed and, with --status, appended to FILE as `outcome<TAB>config<TAB>reason`.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
config=$1 run=$2 threads=$3; shift 3
rerun_changed=0 status=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rerun-changed) rerun_changed=1; shift ;;
    --status) status=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "sweep_run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
bin=${HETSYN_BIN:?sweep_run.sh: set HETSYN_BIN to the hetsyn binary}

# outcome OUTCOME REASON: prints the outcome and records it in the status file
outcome() {
  case "$1" in
    failed) echo "FAILED $run ($config): $2" >&2 ;;
    *) echo "$1 $run${2:+ ($2)}" ;;
  esac
  if [ -n "$status" ]; then printf '%s\t%s\t%s\n' "$1" "$config" "$2" >> "$status"; fi
}

# resolved FILE [train args]: the resolved config as `section.key = value` lines
resolved() {
  local file=$1; shift
  "$bin" -q train --config "$file" --threads 0 "$@" --print-config |
    awk '/^\[+[^]]*\]+$/ { section = $0; gsub(/[][]/, "", section); next }
         NF { print (section == "" ? "" : section ".") $0 }'
}

if [ -f "$run/config.toml" ]; then
  if ! want=$(resolved "$config" ${extra[@]+"${extra[@]}"}); then
    outcome failed "the config cannot be resolved (see the error above)"; exit 1
  fi
  if ! have=$(resolved "$run/config.toml"); then
    outcome failed "the run's config.toml cannot be read (see the error above)"; exit 1
  fi
  if [ "$want" != "$have" ]; then
    changes=$({ diff <(printf '%s\n' "$have") <(printf '%s\n' "$want") || true; } |
      sed -n 's/^< /  run:    /p; s/^> /  config: /p' | head -n 12)
    if [ "$rerun_changed" = 0 ]; then
      printf '%s\n' "$run: its config.toml differs from $config:" "$changes" \
        "remove $run, or pass --rerun-changed to move it aside and train again" >&2
      outcome failed "the run's config.toml differs from the config; --rerun-changed reruns it"
      exit 1
    fi
    aside="$run.old-$(date -u +%Y%m%d-%H%M%S)"
    [ ! -e "$aside" ] || aside="$aside-$$"
    mv -- "$run" "$aside"
    printf '%s\n' "$run: its config.toml differs from $config:" "$changes" "moved the old run to $aside" >&2
  fi
fi

if [ -f "$run/summary.json" ]; then
  outcome skipped "complete"
  exit 0
fi
if [ -f "$run/config.toml" ]; then
  # the config was checked above; --resume takes no config-changing arguments
  resume_args=()
  set -- ${extra[@]+"${extra[@]}"}
  while [ $# -gt 0 ]; do
    case "$1" in
      --set|--seed) shift 2 ;;
      --set=*|--seed=*) shift ;;
      *) resume_args+=("$1"); shift ;;
    esac
  done
  if "$bin" train --resume "$run" --threads "$threads" --no-progress ${resume_args[@]+"${resume_args[@]}"}; then
    outcome done "resumed"
  else
    rc=$?
    outcome failed "hetsyn train --resume exited with status $rc"
    exit 1
  fi
elif "$bin" train --config "$config" --out "$run" --threads "$threads" --no-progress ${extra[@]+"${extra[@]}"}; then
  outcome done ""
else
  rc=$?
  outcome failed "hetsyn train exited with status $rc"
  exit 1
fi
