#!/usr/bin/env bash
# Submits every *.toml of a config directory as one Slurm job array: array index
# i runs the i-th config in sorted order (listed in <out>/array_configs.txt) into
# <out>/<config stem>, resuming it if it was started before and skipping it if
# it is complete; so resubmitting the same directory finishes what is left.
#
#   scripts/slurm_array.sh CONFIG_DIR [--out DIR] [--time HH:MM:SS] [--cpus N] [--mem SIZE]
#                          [--partition P] [--account A] [--max-parallel N] [--dry-run]
#
# --dry-run prints the batch script instead of calling sbatch.
set -euo pipefail
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
config_dir=${1%/}; shift
out="" time_limit="24:00:00" cpus=2 mem="4G" partition="" account="" max_parallel="" dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --time) time_limit=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --partition) partition=$2; shift 2 ;;
    --account) account=$2; shift 2 ;;
    --max-parallel) max_parallel=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage ;;
    *) echo "slurm_array.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -d "$config_dir" ] || { echo "slurm_array.sh: $config_dir is not a directory" >&2; exit 2; }
out=${out:-results/$(basename "$config_dir")}
repo=$(cd "$(dirname "$0")/.." && pwd)
config_abs=$(cd "$config_dir" && pwd)
mkdir -p "$out"
out_abs=$(cd "$out" && pwd)
list="$out_abs/array_configs.txt"
(cd "$config_abs" && ls -1 -- *.toml 2>/dev/null | LC_ALL=C sort | sed "s|^|$config_abs/|") > "$list"
count=$(wc -l < "$list")
[ "$count" -gt 0 ] || { echo "slurm_array.sh: no *.toml in $config_dir" >&2; exit 2; }
array="0-$((count - 1))${max_parallel:+%$max_parallel}"
script=$(cat <<SBATCH
#!/usr/bin/env bash
#SBATCH --job-name=hetsyn-$(basename "$config_abs")
#SBATCH --array=$array
#SBATCH --cpus-per-task=$cpus
#SBATCH --mem=$mem
#SBATCH --time=$time_limit
#SBATCH --output=$out_abs/slurm-%A_%a.out
${partition:+#SBATCH --partition=$partition}
${account:+#SBATCH --account=$account}
set -euo pipefail
config=\$(sed -n "\$((SLURM_ARRAY_TASK_ID + 1))p" "$list")
run="$out_abs/\$(basename "\$config" .toml)"
bin="$repo/target/release/hetsyn"
if [ -f "\$run/summary.json" ]; then echo "\$run is complete"; exit 0; fi
if [ -f "\$run/config.toml" ]; then
  exec "\$bin" -q train --resume "\$run" --threads "\$SLURM_CPUS_PER_TASK" --no-progress
else
  exec "\$bin" -q train --config "\$config" --out "\$run" --threads "\$SLURM_CPUS_PER_TASK" --no-progress
fi
SBATCH
)
if [ "$dry_run" = 1 ]; then
  printf '%s\n' "$script"
else
  (cd "$repo" && cargo build --release --quiet)
  printf '%s\n' "$script" | sbatch
fi
