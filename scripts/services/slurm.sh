#!/usr/bin/env bash
# A throw-away single-node Slurm on this machine, for the tests (and for trying the
# examples/slurm scripts): munged, slurmctld and slurmd started as root from a state directory,
# with no systemd, no cgroups and no accounting database.
#
#   scripts/services/slurm.sh start DIR   # prints SLURM_CONF=DIR/slurm.conf once the node is idle
#   export SLURM_CONF=DIR/slurm.conf      # sinfo, sbatch, squeue, scancel now talk to it
#   scripts/services/slurm.sh stop DIR    # cancels its jobs, stops the daemons, leaves DIR
#
# Everything lives in DIR: the munge key, socket and log, slurm.conf, the daemons' state, spool,
# pid and log files. Ports are picked free on 127.0.0.1, so it does not clash with a real Slurm
# or another test Slurm. Needs the Debian packages slurm-wlm and munge
# (scripts/services/install_debian.sh slurm-wlm munge). One partition, `debug`, holds the node;
# the node has at least 4 CPUs (more than a 2-core machine has, so a job still completing
# never keeps the next test's workers waiting) and a little less than this machine's memory.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
action=$1
dir=$2
PARTITION=debug
started=0
NODE=${SLURM_TEST_NODE:-rustrates-node}

log_tails() {
  for f in "$dir"/munge/munged.log "$dir"/log/slurmctld.log "$dir"/log/slurmd.log; do
    [ -f "$f" ] || continue
    echo "--- last lines of $f" >&2
    tail -n 25 "$f" >&2
  done
}

fail() {
  echo "slurm.sh: $*" >&2
  log_tails
  # A start that failed half-way stops what it had started.
  [ "$started" = 0 ] || stop
  exit 1
}

pid_of() { # pid file -> pid if that process is alive
  [ -s "$1" ] || return 1
  local pid
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

stop_pid_files() { # TERM to each, wait up to 10 s for all, then KILL
  local pids=() pid f
  for f in "$@"; do
    pid=$(pid_of "$f") && pids+=("$pid")
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local alive
  for _ in $(seq 100); do
    alive=()
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive+=("$pid")
    done
    [ ${#alive[@]} -gt 0 ] || return 0
    sleep 0.1
  done
  kill -KILL "${alive[@]}" 2>/dev/null || true
}

start() {
  [ "$(id -u)" -eq 0 ] || fail "must run as root (slurmd starts jobs as their users)"
  for cmd in munged slurmctld slurmd sinfo; do
    command -v "$cmd" >/dev/null || fail "$cmd not found: install the Debian packages slurm-wlm and munge (scripts/services/install_debian.sh slurm-wlm munge)"
  done
  if pid_of "$dir/run/slurmctld.pid" >/dev/null; then
    fail "a Slurm from $dir is already running (slurmctld pid $(cat "$dir/run/slurmctld.pid")); stop it first: $0 stop $dir"
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  mkdir -p "$dir/munge/private" "$dir/state" "$dir/spool" "$dir/run" "$dir/log"
  # munged wants its socket's directories searchable by all, and its key private.
  chmod 755 "$dir" "$dir/munge"
  chmod 700 "$dir/munge/private"

  # munge: its own key, socket and pid file, so a system munged (if any) is left alone.
  local key=$dir/munge/private/munge.key socket=$dir/munge/munge.socket
  [ -s "$key" ] || { head -c 1024 /dev/urandom >"$key"; chmod 400 "$key"; }
  started=1
  munged --socket="$socket" --key-file="$key" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" \
    || fail "munged did not start"

  local ports ctld_port slurmd_port cpus memory host
  # slurmctld runs only where SlurmctldHost names this machine's short host name.
  host=$(uname -n)
  host=${host%%.*}
  ports=$(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
  read -r ctld_port slurmd_port <<<"$ports"
  cpus=$(nproc)
  [ "$cpus" -ge 4 ] || cpus=4
  # slurmd drains a node configured with more memory than it has: stay 5 % below.
  memory=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.95 }' /proc/meminfo)

  cat >"$dir/slurm.conf" <<EOF
# Written by scripts/services/slurm.sh: a single-node test Slurm, everything under $dir.
ClusterName=rustrates-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
# The node may claim more CPUs than the machine has (see CPUs= below).
SlurmdParameters=config_overrides
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No systemd or cgroups in a container: plain process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
# Test jobs are short: look for startable jobs every second, not every minute.
SchedulerParameters=sched_interval=1
ReturnToService=2
# A cancelled job's processes get SIGKILL 2 s after SIGTERM (default 30 s).
KillWait=2
MinJobAge=10
InactiveLimit=0
MailProg=/bin/true
NodeName=$NODE NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF=$dir/slurm.conf

  # -c: no state from an earlier run of this directory (jobs, node states).
  slurmctld -c -f "$SLURM_CONF" || fail "slurmctld did not start"
  slurmd -N "$NODE" -f "$SLURM_CONF" || fail "slurmd did not start"

  local state=""
  for _ in $(seq 300); do
    state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null || true)
    [ "$state" = "idle" ] && break
    pid_of "$dir/run/slurmctld.pid" >/dev/null || fail "slurmctld exited"
    sleep 0.1
  done
  [ "$state" = "idle" ] || fail "node $NODE is '${state:-not listed}' after 30 s, not idle"
  echo "SLURM_CONF=$SLURM_CONF"
}

stop() {
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  export SLURM_CONF=$dir/slurm.conf
  if [ -f "$SLURM_CONF" ] && pid_of "$dir/run/slurmctld.pid" >/dev/null; then
    # Jobs first: their slurmstepd processes outlive slurmd.
    scancel --full --quiet --partition="$PARTITION" 2>/dev/null || true
    for _ in $(seq 100); do
      [ -z "$(squeue -h -p "$PARTITION" -t running,completing -o %i 2>/dev/null)" ] && break
      sleep 0.1
    done
  fi
  stop_pid_files "$dir/run/slurmd.pid" "$dir/run/slurmctld.pid"
  # A step slurmd could not reach: slurmstepd inherited slurmd's SLURM_CONF, the job's
  # processes have it from the submitting environment and a SLURM_JOB_ID besides.
  python3 - "$SLURM_CONF" <<'PY'
import os, signal, sys
mark = b"SLURM_CONF=" + sys.argv[1].encode()
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
        with open(f"/proc/{pid}/comm", "rb") as f:
            comm = f.read().strip()
    except OSError:
        continue
    if mark in env and (comm == b"slurmstepd" or any(e.startswith(b"SLURM_JOB_ID=") for e in env)):
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
PY
  stop_pid_files "$dir/munge/munged.pid"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
