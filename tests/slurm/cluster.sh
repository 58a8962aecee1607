#!/usr/bin/env bash
# A real one-node SLURM cluster on loopback for the tests: Debian's slurm-wlm, munge,
# slurmdbd and MariaDB (the executor plugin reads job states from sacct and hangs without
# accounting: ../shared/notes/slurm-on-one-machine.md). Partitions `cpu` (default) and
# `gpu`, with one fake GPU (File=/dev/null) so jobs asking for --gpus=1 are scheduled and
# see CUDA_VISIBLE_DEVICES.
#
#   tests/slurm/cluster.sh install        apt-get the packages if missing (root)
#   tests/slurm/cluster.sh start DIR      start the daemons; state, config and logs in DIR
#   tests/slurm/cluster.sh stop DIR       stop only the daemons started into DIR, by pid
#   tests/slurm/cluster.sh stop-dbd DIR   stop slurmdbd only (an accounting outage)
#   tests/slurm/cluster.sh start-dbd DIR  start it again (after stop-dbd)
#
# Clients find the cluster through SLURM_CONF=DIR/etc/slurm.conf and, inside jobs, a link
# /etc/slurm/slurm.conf that only lives while the cluster runs: an installed but stopped
# cluster must not slow later Snakemake calls (the plugin queries scontrol at start).
set -euo pipefail

CLUSTER=kpmsflow
ACCOUNT=kpmsflow
DB_PORT=${KPMS_FLOW_SLURM_DB_PORT:-33061}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmdbd >/dev/null \
        && command -v munged >/dev/null && command -v mariadbd >/dev/null; then
        return
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge slurmdbd mariadb-server >/dev/null
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq $((seconds * 4))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    echo "cluster.sh: $what did not come up in ${seconds}s; logs in $DIR" >&2
    return 1
}

start() {
    DIR=$(realpath -m "$1")
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    mem_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10))
    mkdir -p "$DIR"/{etc,state,spool,log,run}
    # munge and mysql cannot enter a private DIR (pytest's are 0700): their files live in a
    # world-traversable folder of their own, removed by stop.
    local daemons
    daemons=$(mktemp -d /tmp/kpms-flow-slurm-daemons.XXXXXX)
    chmod 755 "$daemons"
    echo "$daemons" >"$DIR/run/daemon-dir"
    mkdir -p "$daemons/munge" "$daemons/mysql" "$daemons/mysql-run"
    getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >>/etc/hosts

    # munge on its default socket (slurm's clients use it whatever AuthInfo says), pid in
    # DIR; a munged already serving that socket is used, not started twice.
    install -d -o munge -g munge /run/munge
    chown munge: "$daemons/munge"
    if ! munge -n >/dev/null 2>&1; then
        runuser -u munge -- munged --pid-file="$daemons/munge/munged.pid" \
            --log-file="$daemons/munge/munged.log" --seed-file="$daemons/munge/munged.seed"
        wait_for 10 munged munge -n
        cp "$daemons/munge/munged.pid" "$DIR/run/munged.pid"
    fi

    # MariaDB for slurmdbd: a private data directory on a private port.
    if [ ! -d "$daemons/mysql/mysql" ]; then
        mariadb-install-db --user=mysql --datadir="$daemons/mysql" \
            --auth-root-authentication-method=socket >"$DIR/log/mariadb-install.log" 2>&1
    fi
    chown -R mysql: "$daemons/mysql" "$daemons/mysql-run"
    local db_socket="$daemons/mysql-run/mysqld.sock"
    mariadbd --user=mysql --datadir="$daemons/mysql" --socket="$db_socket" \
        --pid-file="$daemons/mysql-run/mysqld.pid" --port="$DB_PORT" --bind-address=127.0.0.1 \
        --log-error="$daemons/mysql-run/mariadb.log" >/dev/null 2>&1 &
    wait_for 60 mariadb mariadb --socket="$db_socket" -e "select 1"
    cp "$daemons/mysql-run/mysqld.pid" "$DIR/run/mysqld.pid"
    mariadb --socket="$db_socket" -e "
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

    cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=$host
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
EOF
    chmod 600 "$DIR/etc/slurmdbd.conf"

    cat >"$DIR/etc/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
GresTypes=gpu
ReturnToService=2
MinJobAge=600
SlurmctldPort=${KPMS_FLOW_SLURMCTLD_PORT:-16817}
SlurmdPort=${KPMS_FLOW_SLURMD_PORT:-16818}
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
AccountingStoreFlags=job_comment
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
EOF
    cat >"$DIR/etc/gres.conf" <<EOF
AutoDetect=off
NodeName=$host Name=gpu File=/dev/null
EOF
    export SLURM_CONF="$DIR/etc/slurm.conf"
    # The executor plugin strips SLURM_* variables inside jobs, so srun there reads the
    # default path: link it to this cluster's file while it runs (stop removes the link).
    if [ -e /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" != "$SLURM_CONF" ]; then
        echo "cluster.sh: /etc/slurm/slurm.conf exists and is not this test cluster's" >&2
        exit 1
    fi
    mkdir -p /etc/slurm
    ln -sfn "$SLURM_CONF" /etc/slurm/slurm.conf

    slurmdbd
    wait_for 30 slurmdbd sacctmgr -i show cluster
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || true
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" >/dev/null || true
    sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null || true
    slurmctld
    wait_for 30 slurmctld scontrol ping
    slurmd
    wait_for 60 "the node" bash -c "sinfo -h -N -o %T | grep -qx idle"
    echo "SLURM_CONF=$SLURM_CONF"
}

stop() {
    DIR=$(realpath -m "$1")
    # Reverse order of start; each daemon by the pid it wrote into DIR.
    for daemon in slurmd slurmctld slurmdbd mysqld munged; do
        local pidfile="$DIR/run/$daemon.pid"
        [ -f "$pidfile" ] || continue
        local pid
        pid=$(cat "$pidfile")
        if kill "$pid" 2>/dev/null; then
            for _ in $(seq 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
    if [ -f "$DIR/run/daemon-dir" ]; then
        rm -rf "$(cat "$DIR/run/daemon-dir")"
        rm -f "$DIR/run/daemon-dir"
    fi
    # Without a reachable controller, a slurm.conf at the default path costs every later
    # snakemake call ~10 s (the plugin asks scontrol): remove our link.
    if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$DIR/etc/slurm.conf" ]; then
        rm -f /etc/slurm/slurm.conf
    fi
}

stop_dbd() {
    DIR=$(realpath -m "$1")
    local pidfile="$DIR/run/slurmdbd.pid" pid
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

start_dbd() {
    DIR=$(realpath -m "$1")
    export SLURM_CONF="$DIR/etc/slurm.conf"
    slurmdbd
    wait_for 30 slurmdbd sacctmgr -i show cluster
}

case "${1:-}" in
    install) install_packages ;;
    start) start "${2:?usage: cluster.sh start DIR}" ;;
    stop) stop "${2:?usage: cluster.sh stop DIR}" ;;
    stop-dbd) stop_dbd "${2:?usage: cluster.sh stop-dbd DIR}" ;;
    start-dbd) start_dbd "${2:?usage: cluster.sh start-dbd DIR}" ;;
    *) echo "usage: cluster.sh install | start DIR | stop DIR | stop-dbd DIR | start-dbd DIR" >&2; exit 2 ;;
esac
