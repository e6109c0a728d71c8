#!/usr/bin/env bash
# Submits every *.toml of a config directory as one Slurm job array: array index
# i runs the i-th config in sorted order (listed in <out>/array_configs.txt) into
# <out>/<config stem>, resuming it if it was started before and skipping it if
# it is complete; so resubmitting the same directory finishes what is left. A run
# whose config.toml differs from its config is refused, or with --rerun-changed
# moved aside and trained again (as scripts/sweep.sh does).
#
#   scripts/slurm_array.sh CONFIG_DIR [--out DIR] [--time HH:MM:SS] [--cpus N] [--mem SIZE]
#                          [--partition P] [--account A] [--max-parallel N]
#                          [--rerun-changed] [--dry-run] [-- extra train args]
#
# --out defaults to results/<name of CONFIG_DIR>; --partition and --account are
# left out of the batch script when not given. The binary is $HETSYN_BIN when set
# (nothing is built), else target/release/hetsyn, built here before submitting.
# --dry-run prints the batch script instead of building and calling sbatch.
set -euo pipefail
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
config_dir=${1%/}; shift
out="" time_limit="24:00:00" cpus=2 mem="4G" partition="" account="" max_parallel="" dry_run=0 rerun=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out|--time|--cpus|--mem|--partition|--account|--max-parallel)
      [ $# -ge 2 ] || { echo "slurm_array.sh: $1 needs a value" >&2; exit 2; } ;;&
    --out) out=$2; shift 2 ;;
    --time) time_limit=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --partition) partition=$2; shift 2 ;;
    --account) account=$2; shift 2 ;;
    --max-parallel) max_parallel=$2; shift 2 ;;
    --rerun-changed) rerun=" --rerun-changed"; shift ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) echo "slurm_array.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -d "$config_dir" ] || { echo "slurm_array.sh: $config_dir is not a directory" >&2; exit 2; }
case "$cpus" in ''|*[!0-9]*|0) echo "slurm_array.sh: --cpus needs a positive number, not '$cpus'" >&2; exit 2 ;; esac
case "$max_parallel" in *[!0-9]*) echo "slurm_array.sh: --max-parallel needs a number, not '$max_parallel'" >&2; exit 2 ;; esac
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${HETSYN_BIN:-}" ]; then
  bin=$(cd "$(dirname "$HETSYN_BIN")" && pwd)/$(basename "$HETSYN_BIN")
  [ -x "$bin" ] || { echo "slurm_array.sh: HETSYN_BIN=$HETSYN_BIN is not an executable" >&2; exit 2; }
else
  bin="$repo/target/release/hetsyn"
fi
out=${out:-results/$(basename "$config_dir")}
config_abs=$(cd "$config_dir" && pwd)
mkdir -p "$out"
out_abs=$(cd "$out" && pwd)
list="$out_abs/array_configs.txt"
(cd "$config_abs" && ls -1 -- *.toml 2>/dev/null | LC_ALL=C sort | sed "s|^|$config_abs/|") > "$list" || true
count=$(wc -l < "$list")
[ "$count" -gt 0 ] || { echo "slurm_array.sh: no *.toml in $config_dir" >&2; exit 2; }
array="0-$((count - 1))${max_parallel:+%$max_parallel}"
quoted_extra=""
[ ${#extra[@]} -eq 0 ] || quoted_extra=" $(printf '%q ' "${extra[@]}")"
script=$(
  echo "#!/usr/bin/env bash"
  echo "#SBATCH --job-name=hetsyn-$(basename "$config_abs")"
  echo "#SBATCH --array=$array"
  echo "#SBATCH --cpus-per-task=$cpus"
  echo "#SBATCH --mem=$mem"
  echo "#SBATCH --time=$time_limit"
  echo "#SBATCH --output=$out_abs/slurm-%A_%a.out"
  [ -z "$partition" ] || echo "#SBATCH --partition=$partition"
  [ -z "$account" ] || echo "#SBATCH --account=$account"
  cat <<SBATCH
set -euo pipefail
export HETSYN_BIN=$(printf '%q' "$bin")
config=\$(sed -n "\$((SLURM_ARRAY_TASK_ID + 1))p" $(printf '%q' "$list"))
run=$(printf '%q' "$out_abs")/\$(basename "\$config" .toml)
exec $(printf '%q' "$repo/scripts/sweep_run.sh") "\$config" "\$run" "\$SLURM_CPUS_PER_TASK"$rerun --${quoted_extra% }
SBATCH
)
if [ "$dry_run" = 1 ]; then
  printf '%s\n' "$script"
else
  if [ -z "${HETSYN_BIN:-}" ]; then (cd "$repo" && cargo build --release --quiet); fi
  printf '%s\n' "$script" | sbatch
fi
