#!/usr/bin/env bash
# Times hetsyn next to PyTorch peers on the same network and prints both, with
# peak memory: snnTorch (RLeaky, all-to-all recurrence, subtract reset) against
# `hetsyn bench --model homneulif`, and, when pointed at your own checkout of the
# authors' code (github.com/dzcgood/HetSyn, CC BY-NC 4.0, not part of this
# repository), their HetSynLifRSNN against `hetsyn bench --model hetsynlif`.
# Network 700 -> 128R -> 64R -> 20, batch 32, 250 steps, 2 % input density,
# AdamW; median training step over --repeats after a warm-up (scripts/bench_peers.py).
#
#   scripts/bench_peers.sh [--venv DIR] [--authors DIR] [--threads N] [--repeats N] [--no-install]
#
# --venv: the Python virtual environment to create or reuse (default
#   ${XDG_CACHE_HOME:-~/.cache}/hetsyn/peers-venv); torch (CPU wheel from the
#   PyTorch index when reachable, else PyPI), snntorch, numpy and tqdm are
#   installed into it unless --no-install. PYTHON picks the interpreter (python3).
# --authors: a checkout of dzcgood/HetSyn (its shd/SHD_HetSynLIF_RSNN.py is
#   imported as is). Its training step takes about 4 s and 12 GiB of memory.
# --threads (default 2) and --repeats (default 7) apply to both sides. The
#   binary is $HETSYN_BIN when set, else target/release/hetsyn (built here).
# Timings compete for the CPU: run it on an otherwise idle machine.
set -euo pipefail
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
venv="${XDG_CACHE_HOME:-$HOME/.cache}/hetsyn/peers-venv"
authors="" threads=2 repeats=7 install=1
while [ $# -gt 0 ]; do
  case "$1" in
    --venv|--authors|--threads|--repeats)
      [ $# -ge 2 ] || { echo "bench_peers.sh: $1 needs a value" >&2; exit 2; } ;;&
    --venv) venv=$2; shift 2 ;;
    --authors) authors=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --no-install) install=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench_peers.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$threads" "$repeats"; do
  case "$n" in ''|*[!0-9]*|0) echo "bench_peers.sh: --threads and --repeats take a positive integer" >&2; exit 2 ;; esac
done
if [ -n "$authors" ] && [ ! -f "$authors/shd/SHD_HetSynLIF_RSNN.py" ]; then
  echo "bench_peers.sh: $authors/shd/SHD_HetSynLIF_RSNN.py not found (--authors takes a checkout of dzcgood/HetSyn)" >&2
  exit 2
fi

# hetsyn
if [ -n "${HETSYN_BIN:-}" ]; then
  bin=$HETSYN_BIN
else
  (cd "$root" && cargo build --release --quiet)
  bin=$root/target/release/hetsyn
fi

# the Python side
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  echo "creating the virtual environment $venv" >&2
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
fi
py=$venv/bin/python
if [ "$install" = 1 ]; then
  if ! "$py" -c 'import torch' 2>/dev/null; then
    echo "installing torch into $venv" >&2
    # the CPU-only wheel is a tenth of the size; PyPI has the CUDA build only
    "$py" -m pip install --quiet --timeout 30 --index-url https://download.pytorch.org/whl/cpu torch 2>/dev/null \
      || "$py" -m pip install --quiet torch
  fi
  "$py" -c 'import snntorch, numpy, tqdm' 2>/dev/null || "$py" -m pip install --quiet snntorch numpy tqdm
fi

load() { cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?"; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
run_hetsyn() {  # model -> "seconds MiB"
  local line
  line=$("$bin" bench --quiet --model "$1" --threads "$threads" --repeats "$repeats" | grep '^BENCH')
  echo "$(echo "$line" | field "train_s@$threads") $(echo "$line" | field peak_rss_mib)"
}
run_peer() {  # peer [dir] -> "seconds MiB version"
  local line
  line=$("$py" "$here/bench_peers.py" "$@" --threads "$threads" --repeats "$repeats" | grep '^PEER')
  echo "$(echo "$line" | field train_s) $(echo "$line" | field peak_rss_mib) $(echo "$line" | sed -n 's/.* torch=//p')"
}

echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $threads threads, median of $repeats steps after a warm-up"
echo "network 700-128R-64R-20, batch 32, 250 steps, input density 0.02, AdamW; $("$py" -c 'import torch, snntorch; print("torch", torch.__version__, "snntorch", snntorch.__version__)')"
printf '%-34s %12s %14s %11s\n' "" "train step" "peak RSS" "1-min load"
report() {  # label seconds MiB load
  printf '%-34s %10.3f s %10.1f MiB %11s\n' "$1" "$2" "$3" "$4"
}
pair() {  # hetsyn-model label peer-args...
  local model=$1 label=$2; shift 2
  read -r hs hm < <(run_hetsyn "$model"); local hl; hl=$(load)
  read -r ps pm _ < <(run_peer "$@"); local pl; pl=$(load)
  report "hetsyn bench --model $model" "$hs" "$hm" "$hl"
  report "$label" "$ps" "$pm" "$pl"
  awk -v a="$hs" -v b="$ps" -v c="$hm" -v d="$pm" \
    'BEGIN { printf "  hetsyn: %.1fx faster, %.0fx less memory\n", b / a, d / c }'
}
pair homneulif "snnTorch RLeaky" snntorch
if [ -n "$authors" ]; then
  pair hetsynlif "authors' HetSynLifRSNN" authors "$authors"
fi
