# Shared by the scripts/paper/*.sh experiments (sourced, not run): argument
# parsing, and the three steps of an experiment (grid, sweep, summary).
#
# A script sets `name`, its help being its header comment, sources this
# file, calls `paper_args "$@"`, then builds configs with `paper_grid BASE
# [grid args]` (repeatable; same output directory), declares what it records
# with `paper_results KEYS FIGURES [CURVES]`, and ends with `paper_run`,
# optionally `paper_eval [eval args]` and `paper_traces GLOB`, then `paper_record` and
# `paper_summarize [summarize args]`.
#
# Results are kept as data: `paper_record` appends one row per complete run (the
# keys that vary, seed, figures, wall time, git commit) to
# docs/results/<name>.csv (learning curves to docs/results/curves/<name>.csv),
# and `paper_run` leaves out the configs whose keys and seed are recorded there
# already, so the paper's run counts accumulate over sittings and machines.
# `scripts/paper/report.sh` draws the report's tables and figures from those
# files without running anything.
#
# Every mode trains for the paper's length (iterations, batch, epochs) and evaluates
# on the paper's trial counts: a reduced run has fewer seeds or grid points, never
# shorter training, since an under-trained baseline is a different experiment.
#
# Common options:
#   --full        the paper's run count and grid (default: fewer seeds and, where the
#                 script says so, fewer grid points)
#   --seeds N     this many seeds (0..N-1) instead of the mode's count
#   --results DIR where the results CSVs are kept (default docs/results of the
#                 repository; with --set, nothing is recorded unless this is given)
#   --set K=V     change a config key in every run (repeatable; e.g. a smoke test)
#   --jobs N      runs at once (default 1)
#   --threads T   threads per run (default 1)
#   --out DIR     results (default results/paper/<name>, or <name>-full with --full):
#                 DIR/configs/*.toml, DIR/runs/<config stem>/, DIR/runs/summary.{csv,md}
#   --dry-run     write the configs and list them, run nothing
#   -h, --help    this help

paper_usage() {
  awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0" | sed 's/^# \{0,1\}//'
  echo
  sed -n '/^# Common options:/,/^# *-h, --help/p' "$(dirname "${BASH_SOURCE[0]}")/lib.sh" | sed 's/^# \{0,1\}//'
}

paper_args() {
  full=0 jobs=1 threads=1 out="" dry_run=0 seed_count="" extra_sets=() results=""
  record_keys="" record_figures="" record_curves="" record_traces=0 sweep_failed=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --full) full=1; shift ;;
      --seeds) [ $# -ge 2 ] || paper_die "--seeds needs a value"; seed_count=$2; shift 2 ;;
      --set) [ $# -ge 2 ] || paper_die "--set needs KEY=VALUE"; extra_sets+=(--set "$2"); shift 2 ;;
      --jobs) [ $# -ge 2 ] || paper_die "--jobs needs a value"; jobs=$2; shift 2 ;;
      --threads) [ $# -ge 2 ] || paper_die "--threads needs a value"; threads=$2; shift 2 ;;
      --out) [ $# -ge 2 ] || paper_die "--out needs a value"; out=$2; shift 2 ;;
      --results) [ $# -ge 2 ] || paper_die "--results needs a directory"; results=$2; shift 2 ;;
      --dry-run) dry_run=1; shift ;;
      -h|--help) paper_usage; exit 0 ;;
      *) paper_die "unknown option $1 (see --help)" ;;
    esac
  done
  case "$jobs" in ''|*[!0-9]*|0) paper_die "--jobs needs a positive number, not '$jobs'" ;; esac
  case "$threads" in ''|*[!0-9]*) paper_die "--threads needs a number, not '$threads'" ;; esac
  case "$seed_count" in *[!0-9]*|0) paper_die "--seeds needs a positive number, not '$seed_count'" ;; esac
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  if [ "$full" = 1 ]; then out=${out:-results/paper/$name-full}; else out=${out:-results/paper/$name}; fi
  configs="$out/configs"
  if [ -z "$results" ] && [ ${#extra_sets[@]} -eq 0 ]; then results="$repo/docs/results"; fi
  bin=${HETSYN_BIN:-}
  if [ -z "$bin" ]; then
    (cd "$repo" && cargo build --release --quiet)
    bin="$repo/target/release/hetsyn"
  fi
  export HETSYN_BIN=$bin
  rm -rf "$configs"
  mkdir -p "$configs"
}

paper_die() {
  echo "$(basename "$0"): $*" >&2
  exit 2
}

# paper_grid BASE [hetsyn grid args]: adds the configs of one grid to $configs
# (with the --set changes of the command line last).
paper_grid() {
  local base=$1; shift
  case "$base" in /*) ;; *) base="$repo/$base" ;; esac
  "$bin" -q grid "$base" "$@" ${extra_sets[@]+"${extra_sets[@]}"} --out "$configs" > /dev/null
}

# paper_seeds DEFAULT FULL: 0,1,...,N-1 with N the --seeds count, else FULL with
# --full (the paper's run count), else DEFAULT.
paper_seeds() {
  local n=$1
  [ "$full" = 1 ] && n=$2
  [ -n "$seed_count" ] && n=$seed_count
  seq -s, 0 $((n - 1))
}

# paper_results KEYS FIGURES [CURVES]: what paper_record keeps per run (comma
# separated config keys that vary, summary.json figures, metrics.csv columns).
paper_results() {
  record_keys=$1 record_figures=$2 record_curves=${3:-}
}

# The `hetsyn record` options of this experiment.
paper_record_args() {
  record_args=(--experiment "$name" --keys "$record_keys" --figures "$record_figures" --to "$results/$name.csv")
}

# paper_run: trains every config not recorded yet (skipping complete runs, resuming
# interrupted ones); a failed run is reported at the end, after the others are recorded.
paper_run() {
  local count
  if [ -n "$results" ] && [ -n "$record_keys" ] && [ -f "$results/$name.csv" ]; then
    paper_record_args
    "$bin" -q record "$configs" --prune "${record_args[@]}"
  fi
  count=$(find "$configs" -maxdepth 1 -name '*.toml' | wc -l)
  if [ "$dry_run" = 1 ]; then
    echo "$count configs in $configs"
    (cd "$configs" && ls -1 -- *.toml | LC_ALL=C sort)
    exit 0
  fi
  echo "$name: $count runs into $out/runs ($jobs at a time, $threads threads each)"
  [ "$count" -gt 0 ] || return 0
  "$repo/scripts/sweep.sh" "$configs" --jobs "$jobs" --threads "$threads" --out "$out/runs" -- --no-plots \
    || sweep_failed=1
}

# paper_record: the rows (and curves) of the complete runs not recorded yet; exits
# with status 1 afterwards if a run of the sweep failed.
paper_record() {
  if [ -z "$results" ]; then
    echo "$name: nothing recorded (--set changes the experiment; give --results DIR to record it)"
  elif [ -d "$out/runs" ]; then
    paper_record_args
    if [ -n "$record_curves" ]; then
      record_args+=(--curves "$record_curves" --curves-to "$results/curves/$name.csv")
    fi
    if [ "$record_traces" = 1 ]; then
      record_args+=(--traces-to "$results/traces/$name.csv")
    fi
    "$bin" -q record "$out/runs" "${record_args[@]}"
  fi
  [ "$sweep_failed" = 0 ] || paper_die "some runs failed (see the sweep's tally above)"
}

# paper_traces GLOB: draws (`hetsyn plot`) the complete runs $out/runs/GLOB that
# have no plots/output.csv yet, and has paper_record keep their readout traces
# (the first test trial: target and output per step) in
# $results/traces/<name>.csv.
paper_traces() {
  local run
  record_traces=1
  for run in "$out"/runs/$1/; do
    run=${run%/}
    [ -f "$run/summary.json" ] || continue
    [ -f "$run/plots/output.csv" ] && continue
    "$bin" -q plot "$run" > /dev/null
  done
}

# paper_eval [hetsyn eval args]: evaluates the reported checkpoint of every complete run
# (summary.json present) that has no eval CSV yet. `hetsyn eval --checkpoint RUN_DIR`
# chooses that checkpoint (best, else best_on_test, else last, as hetsyn summarize
# reads it) and writes <checkpoint stem>.eval.csv next to it.
paper_eval() {
  local run
  for run in "$out"/runs/*/; do
    run=${run%/}
    [ -f "$run/summary.json" ] || continue
    compgen -G "$run/checkpoints/*.eval.csv" > /dev/null && continue
    "$bin" -q eval --checkpoint "$run" --threads "$threads" "$@" > /dev/null
  done
}

# paper_summarize [hetsyn summarize args]: the table of the runs, printed and in $out/runs/summary.md.
paper_summarize() {
  [ -d "$out/runs" ] || return 0
  "$bin" -q summarize "$out/runs" "$@"
}
