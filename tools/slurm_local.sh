#!/usr/bin/env bash
# A single-node SLURM (slurmctld + slurmd, CPU only) on localhost, for the launcher's integration tests.
#
#   bash tools/slurm_local.sh start    # install slurm-wlm/munge if missing (needs root), write config, start daemons
#   bash tools/slurm_local.sh stop     # stop the daemons by their pid files
#   bash tools/slurm_local.sh status   # print sinfo, or exit 1 when the controller does not answer
#   bash tools/slurm_local.sh env      # print `export SLURM_CONF=...` for the caller's shell
#
# Everything lives in a private folder, $SLURM_LOCAL_DIR (default /tmp/vit-adapter-slurm), addressed through
# SLURM_CONF; nothing under /etc/slurm is touched. munge runs with the package's key (created when missing).
# Daemons are only ever stopped by the pids in their pid files, never by name.
set -euo pipefail

DIR="${SLURM_LOCAL_DIR:-/tmp/vit-adapter-slurm}"
CONF="$DIR/slurm.conf"
HOST="$(hostname -s)"
CPUS="${SLURM_LOCAL_CPUS:-$(nproc)}"
MEM_MB="${SLURM_LOCAL_MEM_MB:-$(awk '/MemTotal/ {print int($2/1024*0.85)}' /proc/meminfo)}"
MUNGE_PID=/run/munge/munged.pid

log() { echo "[slurm_local] $*" >&2; }

need_root() {
  if [[ "$(id -u)" != 0 ]]; then
    log "error: starting a local SLURM needs root (apt-get, munged, slurmd); run as root or use an existing cluster"
    exit 2
  fi
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
     && command -v sbatch >/dev/null; then
    return
  fi
  log "installing slurm-wlm and munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
}

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
  if pid_alive "$MUNGE_PID" && munge -n </dev/null | unmunge >/dev/null 2>&1; then
    return
  fi
  mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
  chmod 400 /etc/munge/munge.key
  chmod 700 /etc/munge
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do
    munge -n </dev/null | unmunge >/dev/null 2>&1 && return
    sleep 0.1
  done
  log "error: munged did not come up (see /var/log/munge/munged.log)"
  exit 3
}

write_conf() {
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
  cat >"$CONF" <<CONF
# Written by tools/slurm_local.sh -- single-node, CPU-only SLURM for tests.
ClusterName=vitadapter
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${SLURM_LOCAL_CTLD_PORT:-6817}
SlurmdPort=${SLURM_LOCAL_D_PORT:-6818}
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
# Let requeued jobs start again right away (tests requeue jobs on purpose).
JobRequeue=1
KillWait=10
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
Waittime=0
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=debug Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
}

status() {
  export SLURM_CONF="$CONF"
  [[ -f "$CONF" ]] || { log "not configured ($CONF missing)"; return 1; }
  pid_alive "$DIR/slurmctld.pid" || { log "slurmctld not running"; return 1; }
  pid_alive "$DIR/slurmd.pid" || { log "slurmd not running"; return 1; }
  sinfo -h -o '%P %a %D %t %N'
}

start() {
  need_root
  install_packages
  start_munge
  export SLURM_CONF="$CONF"
  if pid_alive "$DIR/slurmctld.pid" && pid_alive "$DIR/slurmd.pid"; then
    log "already running (SLURM_CONF=$CONF)"
  else
    write_conf
    pid_alive "$DIR/slurmctld.pid" || slurmctld -c -f "$CONF"
    pid_alive "$DIR/slurmd.pid" || slurmd -f "$CONF"
    # Daemons that fail right away (e.g. the ports are taken by another SLURM) leave no live pid file.
    for _ in $(seq 50); do
      pid_alive "$DIR/slurmctld.pid" && pid_alive "$DIR/slurmd.pid" && break
      sleep 0.1
    done
    if ! pid_alive "$DIR/slurmctld.pid" || ! pid_alive "$DIR/slurmd.pid"; then
      log "error: slurmctld/slurmd did not stay up (ports 6817/6818 taken by another SLURM?); see $DIR/log/"
      tail -n 5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 2>/dev/null || true
      return 4
    fi
  fi
  for _ in $(seq 100); do
    state="$(sinfo -h -n "$HOST" -o '%t' 2>/dev/null || true)"
    if [[ "$state" == idle* || "$state" == mix* || "$state" == alloc* ]]; then
      log "up: node $HOST is $state; export SLURM_CONF=$CONF"
      return 0
    fi
    if [[ "$state" == down* || "$state" == drain* ]]; then
      scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    fi
    sleep 0.2
  done
  log "error: node $HOST did not become idle; see $DIR/log/"
  tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
  return 4
}

stop_pid() {
  local f="$1"
  if pid_alive "$f"; then
    local pid; pid="$(cat "$f")"
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" || true
  fi
  rm -f "$f"
}

stop() {
  export SLURM_CONF="$CONF"
  if [[ -f "$CONF" ]] && pid_alive "$DIR/slurmctld.pid"; then
    # Cancel whatever the tests left behind so slurmd does not keep job steps around.
    scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
  fi
  stop_pid "$DIR/slurmd.pid"
  stop_pid "$DIR/slurmctld.pid"
  log "stopped (munged is left running; it is shared with other users of munge)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 64 ;;
esac
