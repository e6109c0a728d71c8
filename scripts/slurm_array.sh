#!/usr/bin/env bash
# Submits every *.toml of a config directory as one Slurm job array: task i runs
# the i-th config in sorted order into <out>/<config stem>, as scripts/sweep.sh
# does (`hetsyn train --if-exists resume`: a finished run is skipped, an
# unfinished one resumed, a run of another config refused, or with
# --rerun-changed moved aside and trained again, a run in use refused). The list
# of configs is written into the batch script, so a later submission never
# changes what an earlier array runs; resubmitting the directory finishes what
# is left.
#
#   scripts/slurm_array.sh CONFIG_DIR [--out DIR] [--time HH:MM:SS] [--cpus N] [--mem SIZE]
#                          [--partition P] [--account A] [--max-parallel N] [--sbatch-arg ARG]...
#                          [--rerun-changed] [--wait] [--dry-run] [-- extra train args]
#
# Every config is first checked with the extra arguments (`hetsyn train
# --print-config`); one that does not load stops the submission, naming it.
# --out defaults to results/<name of CONFIG_DIR> in the repository; --partition
# and --account are left out when not given; --sbatch-arg passes an option to
# sbatch (repeatable, e.g. --sbatch-arg=--qos=long). The job id is printed; each
# array writes <out>/slurm-<job id>.status (a line per event: task, state,
# config, run dir, detail; scripts/sweep_tally.sh counts it) and a log per task,
# <out>/slurm-<job id>_<task>.out. --wait waits for the array to end (sbatch
# --wait) and prints the tally of scripts/sweep.sh, exiting with status 1 if a
# config failed. --dry-run prints the batch script and writes nothing. The
# binary is $HETSYN_BIN when set (nothing is built), else target/release/hetsyn,
# built here before submitting.
set -euo pipefail
usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
config_dir=${1%/}; shift
out="" time_limit="24:00:00" cpus=2 mem="4G" partition="" account="" max_parallel="" dry_run=0 wait=0
rerun=() sbatch_args=() extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out|--time|--cpus|--mem|--partition|--account|--max-parallel|--sbatch-arg)
      [ $# -ge 2 ] || { echo "slurm_array.sh: $1 needs a value" >&2; exit 2; } ;;&
    --out) out=$2; shift 2 ;;
    --time) time_limit=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --partition) partition=$2; shift 2 ;;
    --account) account=$2; shift 2 ;;
    --max-parallel) max_parallel=$2; shift 2 ;;
    --sbatch-arg) sbatch_args+=("$2"); shift 2 ;;
    --sbatch-arg=*) sbatch_args+=("${1#--sbatch-arg=}"); shift ;;
    --rerun-changed) rerun=(--rerun-changed); shift ;;
    --wait) wait=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) echo "slurm_array.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -d "$config_dir" ] || { echo "slurm_array.sh: $config_dir is not a directory" >&2; exit 2; }
case "$cpus" in ''|*[!0-9]*|0) echo "slurm_array.sh: --cpus needs a positive number, not '$cpus'" >&2; exit 2 ;; esac
case "$max_parallel" in *[!0-9]*|0) echo "slurm_array.sh: --max-parallel needs a positive number, not '$max_parallel'" >&2; exit 2 ;; esac
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${HETSYN_BIN:-}" ]; then
  bin=$(cd "$(dirname "$HETSYN_BIN")" && pwd)/$(basename "$HETSYN_BIN")
  [ -x "$bin" ] || { echo "slurm_array.sh: HETSYN_BIN=$HETSYN_BIN is not an executable" >&2; exit 2; }
else
  bin="$repo/target/release/hetsyn"
  [ "$dry_run" = 1 ] || (cd "$repo" && cargo build --release --quiet)
fi
config_abs=$(cd "$config_dir" && pwd)
name=$(basename "$config_abs")
# absolute, without creating anything (--dry-run writes nothing)
out=${out:-$repo/results/$name}
case "$out" in /*) out_abs=$out ;; *) out_abs=$PWD/$out ;; esac
out_abs=${out_abs%/}
# sbatch reads a #SBATCH value in double quotes, with %% for a literal %
for path in "$out_abs" "$name" "$partition" "$account"; do
  case "$path" in *'"'*|*$'\n'*) echo "slurm_array.sh: $path: a double quote or a newline cannot be passed to sbatch" >&2; exit 2 ;; esac
done
configs=()
while IFS= read -r -d '' c; do configs+=("$c"); done < <(
  shopt -s nullglob; for c in "$config_abs"/*.toml; do printf '%s\0' "$c"; done | LC_ALL=C sort -z)
count=${#configs[@]}
[ "$count" -gt 0 ] || { echo "slurm_array.sh: no *.toml in $config_dir" >&2; exit 2; }

# every config, as its task will load it, before anything is queued
if [ -x "$bin" ]; then
  bad=0
  for c in "${configs[@]}"; do
    if ! error=$("$bin" -q train --config "$c" --threads 0 ${extra[@]+"${extra[@]}"} --print-config 2>&1 >/dev/null); then
      echo "slurm_array.sh: $c: ${error#error: }" >&2
      bad=$((bad + 1))
    fi
  done
  if [ "$bad" -gt 0 ]; then
    echo "slurm_array.sh: $bad of $count configs cannot be trained (with the extra arguments: ${extra[*]:-none}); nothing submitted" >&2
    exit 1
  fi
else
  echo "slurm_array.sh: $bin is not built: the configs were not checked" >&2
fi

script=$(
  echo "#!/usr/bin/env bash"
  echo "#SBATCH --job-name=\"hetsyn-$name\""
  echo "#SBATCH --array=0-$((count - 1))${max_parallel:+%$max_parallel}"
  echo "#SBATCH --cpus-per-task=$cpus"
  echo "#SBATCH --mem=$mem"
  echo "#SBATCH --time=$time_limit"
  echo "#SBATCH --output=\"${out_abs//%/%%}/slurm-%A_%a.out\""
  [ -z "$partition" ] || echo "#SBATCH --partition=\"$partition\""
  [ -z "$account" ] || echo "#SBATCH --account=\"$account\""
  echo "# the configs of this submission: task i runs configs[i]"
  echo "configs=("
  for c in "${configs[@]}"; do printf '  %q\n' "$c"; done
  echo ")"
  echo "set -euo pipefail"
  echo "export HETSYN_BIN=$(printf '%q' "$bin")"
  echo "out=$(printf '%q' "$out_abs")"
  echo 'config=${configs[$SLURM_ARRAY_TASK_ID]}'
  printf 'exec %q "$config" "$out/$(basename "$config" .toml)" "${SLURM_CPUS_PER_TASK:-1}" --status "$out/slurm-$SLURM_ARRAY_JOB_ID.status" --task "$SLURM_ARRAY_TASK_ID"' \
    "$repo/scripts/sweep_run.sh"
  printf ' %q' ${rerun[@]+"${rerun[@]}"} -- ${extra[@]+"${extra[@]}"}
  echo
)
if [ "$dry_run" = 1 ]; then
  printf '%s\n' "$script"
  exit 0
fi

mkdir -p "$out_abs"
submitted=$(mktemp "${TMPDIR:-/tmp}/hetsyn-sbatch.XXXXXX")
trap 'rm -f "$submitted"' EXIT
# sbatch prints the job id when the array is queued, and with --wait then waits for it
sbatch --parsable ${sbatch_args[@]+"${sbatch_args[@]}"} $([ "$wait" = 0 ] || echo --wait) > "$submitted" <<< "$script" &
sbatch_pid=$!
while [ "$(wc -l < "$submitted")" = 0 ] && kill -0 "$sbatch_pid" 2>/dev/null; do sleep 0.1; done
job=$(head -n 1 "$submitted" | cut -d ';' -f 1)
if [ -z "$job" ]; then
  wait "$sbatch_pid" || true
  echo "slurm_array.sh: sbatch did not submit the array (see its error above)" >&2
  exit 1
fi
status="$out_abs/slurm-$job.status"
{
  flock 9
  [ -s "$status" ] || printf 'task\tstate\tconfig\trun\tdetail\n' >&9
  for i in "${!configs[@]}"; do
    printf '%s\tqueued\t%s\t%s\t\n' "$i" "${configs[$i]}" "$out_abs/$(basename "${configs[$i]}" .toml)" >&9
  done
} 9>>"$status"
echo "submitted job array $job: $config_dir ($count config$([ "$count" = 1 ] || echo s)) into $out_abs"
echo "status: $status (scripts/sweep_tally.sh counts it); logs: $out_abs/slurm-${job}_<task>.out"
if [ "$wait" = 0 ]; then
  wait "$sbatch_pid" || true
  exit 0
fi
# sbatch --wait exits with the highest exit status of the tasks; the tally says which failed
wait "$sbatch_pid" || true
"$repo/scripts/sweep_tally.sh" "$status" --label "sweep $config_dir (job $job)" --final
