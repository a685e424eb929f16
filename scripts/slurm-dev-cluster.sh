#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost, for tests and development.
#
#   scripts/slurm-dev-cluster.sh start [--accounting] [--preemption] [DIR]
#                                                      (DIR: /tmp/fractal-like-slurm)
#   scripts/slurm-dev-cluster.sh stop|purge|status [DIR]
#
# start  installs slurm-wlm, munge and sudo if missing, starts munged if needed, writes
#        DIR/slurm.conf with free ports, starts slurmctld and slurmd (pid files in DIR),
#        waits for the node to be idle and prints `export SLURM_CONF=DIR/slurm.conf` as
#        its last line (also written to DIR/env). Does nothing more if DIR's cluster
#        already answers.
#        --accounting also runs slurmdbd (installed if missing) on the machine's MariaDB,
#        in a database of DIR's own, so that `sacct` answers every user. MariaDB is
#        reached as FRACTAL_LIKE_SLURM_DB_USER (root) with FRACTAL_LIKE_SLURM_DB_PASS
#        (empty) at FRACTAL_LIKE_SLURM_DB_HOST:FRACTAL_LIKE_SLURM_DB_PORT (127.0.0.1:3306).
#        --preemption adds two partitions on the node for preemption tests: `low`, whose
#        jobs are cancelled (state PREEMPTED) when a job of `high` needs their resources,
#        and `high`. Jobs of `main` are never preempted. Without it the configuration is
#        exactly the plain one.
# stop   cancels the cluster's jobs (so no job processes outlive it), then stops slurmd,
#        slurmctld and slurmdbd by their pid files. munged is left running: other
#        clusters use it. The accounting database is kept for the next start.
# purge  stop, then drop DIR's accounting database.
# status exit 0 and one line if DIR's cluster answers, else exit 1.
#
# Needs root (SlurmUser=root, jobs run under other users' uids). See docs/slurm.md.
set -euo pipefail

# The daemons live in /usr/sbin, which a CI user's PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

PORT_LOCK=/tmp/.fractal-like-slurm-ports.lock
PORT_LOW=17000   # below the kernel's ephemeral range (32768+), so outgoing connections
PORT_HIGH=29999  # never hold a port we pick

DB_HOST=${FRACTAL_LIKE_SLURM_DB_HOST:-127.0.0.1}
DB_PORT=${FRACTAL_LIKE_SLURM_DB_PORT:-3306}
DB_USER=${FRACTAL_LIKE_SLURM_DB_USER:-root}
DB_PASS=${FRACTAL_LIKE_SLURM_DB_PASS:-}

die() {
    echo "slurm-dev-cluster: $*" >&2
    exit 1
}

log() {
    # Progress goes to stderr: stdout's last line must be the export line.
    echo "slurm-dev-cluster: $*" >&2
}

usage() {
    echo "usage: $0 start [--accounting] [--preemption] [DIR] | stop|purge|status [DIR]" >&2
    exit 2
}

have() {
    command -v "$1" >/dev/null 2>&1
}

# --- process helpers -------------------------------------------------------

# True if PID is a live process (not a zombie: killed daemons can linger as zombies
# when PID 1 does not reap them, and kill -0 still succeeds on those).
alive() {
    local pid=$1 stat rest
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    rest=${stat##*) }  # the command name may contain spaces: skip past its ')'
    [ "${rest%% *}" != "Z" ]
}

# The pid in FILE if it names a live process called NAME, else nothing; guards against
# killing an unrelated process that reused a stale pid.
daemon_pid() {
    local file=$1 name=$2 pid
    [ -s "$file" ] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [ -n "$pid" ] && alive "$pid" || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
    echo "$pid"
}

stop_daemon() {
    local file=$1 name=$2 pid
    if pid=$(daemon_pid "$file" "$name"); then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 150); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            log "$name ($pid) ignored SIGTERM for 15 s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do
                alive "$pid" || break
                sleep 0.1
            done
        fi
        alive "$pid" && die "$name ($pid) did not exit"
    fi
    rm -f "$file"
}

# --- cluster helpers -------------------------------------------------------

# The node's state as sinfo reports it, e.g. "idle"; fails if the controller is silent.
node_state() {
    local conf=$1
    [ -f "$conf" ] || return 1
    SLURM_CONF=$conf timeout 10 sinfo -h -o %T 2>/dev/null | head -n1 | grep .
}

# True if DIR's daemons are running and the controller answers. The node may be busy
# in any way (mixed, completing, ...): a cluster in use must not be restarted.
cluster_up() {
    local dir=$1
    daemon_pid "$dir/slurmctld.pid" slurmctld >/dev/null || return 1
    daemon_pid "$dir/slurmd.pid" slurmd >/dev/null || return 1
    if [ -f "$dir/slurmdbd.conf" ]; then
        daemon_pid "$dir/slurmdbd.pid" slurmdbd >/dev/null || return 1
    fi
    node_state "$dir/slurm.conf" >/dev/null
}

# True once a freshly started node can take jobs. A suffix such as '*' ("not
# responding", before slurmd registers) means not yet.
cluster_ready() {
    local dir=$1 state
    cluster_up "$dir" || return 1
    state=$(node_state "$dir/slurm.conf") || return 1
    case "$state" in
        idle | mixed | allocated | completing) return 0 ;;
        *) return 1 ;;
    esac
}

listening_ports() {
    if have ss; then
        ss -Htln | awk '{n = split($4, a, ":"); print a[n]}'
    else
        # No iproute2 on a minimal machine: read the kernel's tables (state 0A = LISTEN).
        local hex
        for hex in $(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
            awk '$4 == "0A" {split($2, a, ":"); print a[2]}'); do
            echo $((16#$hex))
        done
    fi
}

# Three consecutive free ports (slurmctld, slurmd, slurmdbd), starting from a random
# point so parallel clusters rarely even look at the same ones (the caller holds
# PORT_LOCK against races).
pick_ports() {
    local used span start port
    used=" $(listening_ports | sort -un | tr '\n' ' ') "
    span=$((PORT_HIGH - PORT_LOW))
    start=$((PORT_LOW + (RANDOM * 32768 + RANDOM) % span))
    for ((i = 0; i < span; i += 3)); do
        port=$((PORT_LOW + (start - PORT_LOW + i) % (span - 2)))
        if [[ "$used" != *" $port "* && "$used" != *" $((port + 1)) "* &&
            "$used" != *" $((port + 2)) "* ]]; then
            echo "$port $((port + 1)) $((port + 2))"
            return 0
        fi
    done
    return 1
}

install_missing() {
    if have slurmctld && have munged && have sudo; then
        return 0
    fi
    log "installing slurm-wlm, munge and sudo (about a minute)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null >&2
    apt-get install -y -q slurm-wlm munge sudo </dev/null >&2
    have slurmctld && have munged && have sudo || die "installation did not provide slurmctld, munged and sudo"
}

install_slurmdbd() {
    have slurmdbd && return 0
    log "installing slurmdbd"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null >&2
    apt-get install -y -q slurmdbd </dev/null >&2
    have slurmdbd || die "installation did not provide slurmdbd"
}

# --- accounting (slurmdbd on MariaDB) --------------------------------------

# DIR's own database: clusters in different folders never share records.
accounting_db() {
    echo "slurm_acct_$(printf %s "$1" | cksum | cut -d' ' -f1)"
}

db_sql() {
    MYSQL_PWD=$DB_PASS mysql --protocol=TCP -h "$DB_HOST" -P "$DB_PORT" -u "$DB_USER" -N -e "$1"
}

write_dbd_config() {
    local dir=$1 dbd_port=$2 host=$3 db
    db=$(accounting_db "$dir")
    # slurmdbd reads slurmdbd.conf beside SLURM_CONF and refuses it unless only its user
    # (SlurmUser=root) can read it: it holds the database password.
    (
        umask 077
        cat >"$dir/slurmdbd.conf.new" <<EOF
# Written by scripts/slurm-dev-cluster.sh --accounting; rewritten at every fresh start.
AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=$host
DbdPort=$dbd_port
SlurmUser=root
PidFile=$dir/slurmdbd.pid
LogFile=$dir/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=$DB_HOST
StoragePort=$DB_PORT
StorageUser=$DB_USER
StorageLoc=$db
EOF
        # An empty StoragePass is a parse error: leave the line out for no password.
        if [ -n "$DB_PASS" ]; then
            echo "StoragePass=$DB_PASS" >>"$dir/slurmdbd.conf.new"
        fi
    )
    mv "$dir/slurmdbd.conf.new" "$dir/slurmdbd.conf"
}

start_slurmdbd() {
    local dir=$1 db
    db=$(accounting_db "$dir")
    db_sql "SELECT 1" >/dev/null 2>&1 ||
        die "MariaDB does not answer at $DB_HOST:$DB_PORT as $DB_USER (--accounting needs it)"
    db_sql "CREATE DATABASE IF NOT EXISTS \`$db\`" || die "could not create the database $db"
    log "starting slurmdbd (database $db)"
    SLURM_CONF=$dir/slurm.conf slurmdbd </dev/null >>"$dir/log/slurmdbd.out" 2>&1 8>&- 9>&- ||
        die "slurmdbd failed to start; see $dir/log/slurmdbd.log"
    for _ in $(seq 1 60); do
        if SLURM_CONF=$dir/slurm.conf timeout 10 sacctmgr -n show cluster >/dev/null 2>&1; then
            # slurmctld registers with slurmdbd only as a cluster the database knows.
            SLURM_CONF=$dir/slurm.conf timeout 10 sacctmgr -i add cluster fractallike >/dev/null 2>&1 || true
            return 0
        fi
        sleep 0.5
    done
    tail -n 20 "$dir/log/slurmdbd.log" >&2 2>/dev/null || true
    die "slurmdbd did not answer within 30 s"
}

ensure_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        # The package normally creates the key; make one if it did not.
        log "creating /etc/munge/munge.key"
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge
    chown munge:munge /run/munge
    chmod 0755 /run/munge
    log "starting munged"
    # munged refuses to run as root; it daemonizes, so this returns.
    runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1 ||
        runuser -u munge -- /usr/sbin/munged --force </dev/null >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "munged is not working (munge -n | unmunge fails); see /var/log/munge/munged.log"
}

write_config() {
    local dir=$1 ctld_port=$2 slurmd_port=$3 host=$4 dbd_port=${5:-} cpus mem_mib accounting
    local preemption="" partitions
    # FRACTAL_LIKE_SLURM_CPUS lets tests oversubscribe the node, so that jobs that only
    # sleep (time-limit, stop tests) do not hold up the others; benchmarks keep nproc.
    cpus=${FRACTAL_LIKE_SLURM_CPUS:-$(nproc)}
    # slurmd drains a node that has less memory than configured: stay 5 % under MemTotal.
    mem_mib=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.95}' /proc/meminfo)
    if [ -n "$dbd_port" ]; then
        # Every job and step recorded by slurmdbd: sacct answers every user.
        accounting="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$dbd_port"
    else
        # No slurmdbd: plain sacct fails; 'sacct -c' reads the completion file below.
        accounting="AccountingStorageType=accounting_storage/none"
    fi
    partitions="PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP"
    if [ "$PREEMPTION" = yes ]; then
        # A job of a higher PriorityTier preempts the jobs of lower tiers that hold what
        # it needs; CANCEL ends them at once with the state PREEMPTED (no requeue).
        preemption="
# --preemption: jobs of 'low' are cancelled when a job of 'high' needs their resources.
PreemptType=preempt/partition_prio
PreemptMode=CANCEL"
        partitions="PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=OFF
PartitionName=low Nodes=$host MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=CANCEL
PartitionName=high Nodes=$host MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF"
    fi
    cat >"$dir/slurm.conf.new" <<EOF
# Written by scripts/slurm-dev-cluster.sh; rewritten at every fresh start. See docs/slurm.md.
ClusterName=fractallike
# Fixed addresses: no name lookups (containers often cannot resolve their own name).
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true

# No cgroups and no systemd here: track processes by parent pid, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none

# Cores and memory are consumable, so jobs share the node as on a real cluster.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job with no --mem takes the whole node and blocks the rest.
DefMemPerCPU=1000
# Impossible requests fail at sbatch instead of pending forever.
EnforcePartLimits=ALL

# Fast scheduling: start jobs at once instead of on the periodic passes.
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,default_queue_depth=1000,bf_interval=1$preemption
# With an epilog slurmd reports a job's end at once, so the next job starts immediately.
Epilog=/bin/true

$accounting
# Job completions also go to a text file that 'sacct -c' reads, with or without slurmdbd.
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
# Without cgroups, --mem is only enforced by sampling: kill jobs above it within ~1 s.
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherParams=OverMemoryKill
JobAcctGatherFrequency=task=1

# Finished jobs stay visible to scontrol/squeue for 5 minutes.
MinJobAge=300
MaxJobCount=20000
MaxArraySize=10001
KillWait=5
InactiveLimit=0
Waittime=0
SlurmctldTimeout=120
SlurmdTimeout=300
# A node that was down comes back as soon as its slurmd registers.
ReturnToService=2
# Trust this file's CPUs and memory over what slurmd detects (e.g. inside a cpuset).
SlurmdParameters=config_overrides

NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mib State=UNKNOWN
$partitions
EOF
    chmod 0644 "$dir/slurm.conf.new"
    mv "$dir/slurm.conf.new" "$dir/slurm.conf"
}

write_env() {
    local dir=$1
    echo "export SLURM_CONF=$dir/slurm.conf" >"$dir/env"
    chmod 0644 "$dir/env"
}

# --- commands --------------------------------------------------------------

cmd_start() {
    local dir=$1 accounting=$2 host ports ctld_port slurmd_port dbd_port state
    [ "$(id -u)" = 0 ] || die "start needs root (the daemons run as root; jobs run as other users)"
    install_missing
    if [ "$accounting" = yes ]; then
        install_slurmdbd
    fi
    ensure_munge

    mkdir -p "$dir"
    chmod 0755 "$dir"
    # One start or stop at a time per DIR (e.g. several test workers starting it at once).
    exec 9>"$dir/.lock"
    flock -w 120 9 || die "$dir is locked by another start/stop for 2 minutes"

    if cluster_up "$dir"; then
        write_env "$dir"
        echo "export SLURM_CONF=$dir/slurm.conf"
        return 0
    fi
    # Half-started or crashed: clear what is left before starting afresh.
    stop_daemon "$dir/slurmd.pid" slurmd
    stop_daemon "$dir/slurmctld.pid" slurmctld
    stop_daemon "$dir/slurmdbd.pid" slurmdbd
    rm -f "$dir/slurmdbd.conf"

    for sub in state spool log; do
        mkdir -p "$dir/$sub"
        chmod 0755 "$dir/$sub"
    done
    host=$(hostname -s 2>/dev/null || hostname)

    # Hold the port lock until both daemons listen, so two starts never pick the same ports.
    exec 8>"$PORT_LOCK"
    flock -w 120 8 || die "could not get $PORT_LOCK"
    ports=$(pick_ports) || die "no three free ports in $PORT_LOW-$PORT_HIGH"
    read -r ctld_port slurmd_port dbd_port <<<"$ports"
    if [ "$accounting" = yes ]; then
        write_config "$dir" "$ctld_port" "$slurmd_port" "$host" "$dbd_port"
        write_dbd_config "$dir" "$dbd_port" "$host"
        start_slurmdbd "$dir"
    else
        write_config "$dir" "$ctld_port" "$slurmd_port" "$host"
    fi

    log "starting slurmctld (port $ctld_port) and slurmd (port $slurmd_port) in $dir"
    # Both daemonize. Their stdio must not hold our caller's pipes open, and they must
    # not inherit the lock fds 8 and 9, or the locks would stay held as long as they run.
    slurmctld -f "$dir/slurm.conf" </dev/null >>"$dir/log/slurmctld.out" 2>&1 8>&- 9>&- ||
        die "slurmctld failed to start; see $dir/log/slurmctld.log"
    slurmd -f "$dir/slurm.conf" -N "$host" </dev/null >>"$dir/log/slurmd.out" 2>&1 8>&- 9>&- ||
        die "slurmd failed to start; see $dir/log/slurmd.log"

    state=""
    for _ in $(seq 1 60); do
        if cluster_ready "$dir"; then
            state=ready
            break
        fi
        sleep 0.5
    done
    flock -u 8
    if [ "$state" != ready ]; then
        log "the node did not become idle within 30 s (sinfo: $(node_state "$dir/slurm.conf" || echo 'no answer'))"
        tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 2>/dev/null || true
        stop_daemon "$dir/slurmd.pid" slurmd
        stop_daemon "$dir/slurmctld.pid" slurmctld
        stop_daemon "$dir/slurmdbd.pid" slurmdbd
        exit 1
    fi
    write_env "$dir"
    echo "export SLURM_CONF=$dir/slurm.conf"
}

cmd_stop() {
    local dir=$1 jobs
    [ -d "$dir" ] || return 0
    exec 9>"$dir/.lock"
    flock -w 120 9 || die "$dir is locked by another start/stop for 2 minutes"
    if node_state "$dir/slurm.conf" >/dev/null; then
        # Cancel jobs first: slurmstepd and the job's processes outlive a stopped slurmd.
        jobs=$(SLURM_CONF=$dir/slurm.conf timeout 10 squeue -h -o %i 2>/dev/null || true)
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086  # one job id per word
            SLURM_CONF=$dir/slurm.conf timeout 10 scancel $jobs 2>/dev/null || true
            for _ in $(seq 1 40); do
                [ -z "$(SLURM_CONF=$dir/slurm.conf timeout 10 squeue -h -o %i -t R,CG,S 2>/dev/null)" ] && break
                sleep 0.25
            done
        fi
    fi
    stop_daemon "$dir/slurmd.pid" slurmd
    stop_daemon "$dir/slurmctld.pid" slurmctld
    stop_daemon "$dir/slurmdbd.pid" slurmdbd
    log "stopped the cluster in $dir"
}

cmd_purge() {
    local dir=$1 db
    cmd_stop "$dir"
    db=$(accounting_db "$dir")
    if db_sql "SELECT 1" >/dev/null 2>&1; then
        db_sql "DROP DATABASE IF EXISTS \`$db\`" && log "dropped the accounting database $db"
    fi
}

cmd_status() {
    local dir=$1 state
    if cluster_up "$dir"; then
        state=$(node_state "$dir/slurm.conf")
        if [ -f "$dir/slurmdbd.conf" ]; then
            state="$state, accounting by slurmdbd"
        fi
        echo "up: node $state, SLURM_CONF=$dir/slurm.conf"
        return 0
    fi
    echo "down: no responding cluster in $dir" >&2
    return 1
}

[ $# -ge 1 ] || usage
COMMAND=$1
shift
ACCOUNTING=no
PREEMPTION=no
if [ "$COMMAND" = start ]; then
    while [ $# -ge 1 ]; do
        case "$1" in
            --accounting) ACCOUNTING=yes ;;
            --preemption) PREEMPTION=yes ;;
            *) break ;;
        esac
        shift
    done
fi
[ $# -le 1 ] || usage
DIR=${1:-/tmp/fractal-like-slurm}
case "$DIR" in
    /*) ;;
    *) DIR="$PWD/$DIR" ;;
esac
DIR=${DIR%/}
# The path goes unquoted into slurm.conf and the export line: keep it plain.
[[ "$DIR" =~ ^/[A-Za-z0-9._/-]+$ ]] || die "DIR must be a plain path (letters, digits, . _ - /): $DIR"

case "$COMMAND" in
    start) cmd_start "$DIR" "$ACCOUNTING" ;;
    stop) cmd_stop "$DIR" ;;
    purge) cmd_purge "$DIR" ;;
    status) cmd_status "$DIR" ;;
    *) usage ;;
esac
