#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests/slurm.rs:
#
#   tests/slurm/cluster.sh start DIR   installs slurmctld, slurmd, slurm-client and munge
#                                      from Debian's packages when missing, writes
#                                      DIR/slurm.conf (this host, its CPUs, state and logs
#                                      under DIR), starts munged (unless one answers
#                                      already), slurmctld and slurmd, and waits for the
#                                      node to be idle. Clients need SLURM_CONF=DIR/slurm.conf.
#   tests/slurm/cluster.sh stop DIR    stops exactly the daemons `start` started (their
#                                      pids are in DIR/pids), and waits for them to end.
#
# `start` exits with status 77 and one line saying why when the cluster cannot be had
# here (not root, no apt-get, the packages or the daemons fail); the test is then
# skipped. Any daemon it started is stopped again in that case.
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
action=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)
pids="$dir/pids"

stop() {
  [ -f "$pids" ] || return 0
  local pid name
  while read -r pid name; do kill -TERM "$pid" 2>/dev/null || true; done < <(tac "$pids")
  while read -r pid name; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "cluster.sh: $name (pid $pid) did not stop on SIGTERM within 10 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done < "$pids"
  rm -f "$pids"
}

# skip REASON: stops what was started, says why, exits 77
skip() {
  stop
  echo "slurm cluster unavailable: $1"
  exit 77
}

# started NAME PID: records a daemon to stop
started() { printf '%s %s\n' "$2" "$1" >> "$pids"; }

case "$action" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "cluster.sh: unknown action $action (start or stop)" >&2; exit 2 ;;
esac

[ "$(id -u)" = 0 ] || skip "not root (the daemons run as root and munge)"
[ ! -f "$pids" ] || skip "$pids exists: a cluster of $dir is running; stop it first"
need=()
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || skip "${need[*]} missing and no apt-get"
  echo "installing ${need[*]} (apt-get)"
  t0=$(date +%s)
  # the packages' scripts cannot start services here (no systemd); this script does
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
         slurmctld slurmd slurm-client munge; } > "$dir/apt.log" 2>&1 \
    || skip "apt-get install failed (last lines of $dir/apt.log: $(tail -n 3 "$dir/apt.log" | tr '\n' ' '))"
  echo "installed in $(( $(date +%s) - t0 )) s"
fi

# munge: its key (the package creates one; else here), then the daemon as the munge user
key=/etc/munge/munge.key
if [ ! -s "$key" ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
fi
chown munge:munge "$key" && chmod 0400 "$key"
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  echo "munged is running already (not started here)"
else
  setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F > "$dir/munged.out" 2>&1 &
  started munged $!
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || skip "munged does not answer (see $dir/munged.out)"
fi

host=$(uname -n | cut -d . -f 1)
# ports of their own, so that no other cluster on this host answers in their place
port=$(( 20000 + ($$ % 4000) * 2 ))
while (: < "/dev/tcp/127.0.0.1/$port") 2>/dev/null || (: < "/dev/tcp/127.0.0.1/$((port + 1))") 2>/dev/null; do
  port=$((port + 2))
done
cpus=$(nproc)
mem=$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
mkdir -p "$dir/state" "$dir/spool"
cat > "$dir/slurm.conf" <<CONF
ClusterName=hetsyntest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
KillWait=10
# job records kept (0: never purged), so that sbatch --wait polls every 2 s, not after 2, 8, 32 s
MinJobAge=0
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"
# -i: ignore state left by an earlier cluster of the same directory
slurmctld -D -i -f "$SLURM_CONF" > "$dir/slurmctld.out" 2>&1 &
started slurmctld $!
slurmd -D -f "$SLURM_CONF" > "$dir/slurmd.out" 2>&1 &
started slurmd $!
for _ in $(seq 300); do
  [ "$(sinfo -h -n "$host" -o '%t' 2>/dev/null)" = idle ] && break
  sleep 0.1
done
state=$(sinfo -h -n "$host" -o '%t' 2>/dev/null || true)
[ "$state" = idle ] || skip "the node is not idle after 30 s (state '${state}'; see $dir/slurmctld.log, $dir/slurmd.log)"
while read -r pid name; do
  kill -0 "$pid" 2>/dev/null || skip "$name exited (see $dir/$name.out)"
done < "$pids"
echo "slurm cluster up: node $host, $cpus CPUs, ports $port and $((port + 1)), SLURM_CONF=$SLURM_CONF"
