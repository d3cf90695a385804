#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine (munged, slurmctld, slurmd, all as root;
# state under /tmp/slurm-ci) for testing the templates: CI runs it (.ci/run) before the Slurm
# test (tests/cluster/slurm.rs). Needs Debian's slurm-wlm and munge. Writes
# /etc/slurm/slurm.conf and /etc/munge/munge.key (if absent): for a throwaway machine only.
set -euo pipefail
if sinfo -h -o %T 2>/dev/null | grep -Eq 'idle|mixed|alloc'; then sinfo; exit 0; fi
H=$(hostname -s)
D=/tmp/slurm-ci
mkdir -p $D/state $D/spool /etc/slurm /var/log/slurm /run/munge /var/lib/munge /var/log/munge /etc/munge
if [ ! -s /etc/munge/munge.key ]; then dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
munged --force 2>/dev/null || munged
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 / 2 ))
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=llmforge-ci
SlurmctldHost=$H
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$H CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=ci Nodes=$H Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
slurmctld
slurmd
for i in $(seq 1 30); do
  if sinfo -h -o %T 2>/dev/null | grep -Eq 'idle|mixed|alloc'; then sinfo; exit 0; fi
  sleep 1
done
echo "slurm did not come up" >&2; tail -30 $D/slurmctld.log $D/slurmd.log >&2; exit 1
