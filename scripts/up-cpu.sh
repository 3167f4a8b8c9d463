#!/usr/bin/env bash
# up-cpu.sh ROUNDS DIR...: the lab's CPU of a 3×10 `netlab up`, builds alternated (A B A B);
# NODES and PODS (pods per node) change the lab's size (NODES=4 PODS=250: the 1000-pod lab).
# Each DIR holds netlab, netlab-pod and netlab-agent (as `make build` builds them); ENV@DIR
# runs that build with ENV (comma-separated NAME=VALUE) in up's environment. Per up: cpu =
# every process the up started (a cpuacct cgroup, cgroup v1), busy = the machine's busy
# jiffies (/proc/stat) around it, wall, the load, then per role: processes/ms/minor faults
# (utime+stime and minflt of each lab process right after up returns, scripts/up-roles.py).
# docs/performance.md, "Bring-up, fourteenth stop". As root; labs are named upcpuNNNNN.
set -euo pipefail
R=$1; shift
NODES=${NODES:-3}
PODS=${PODS:-10}
HERE=$(cd "$(dirname "$0")" && pwd)
CG=/sys/fs/cgroup/cpuacct/upcpu$$
LAB=$(mktemp /tmp/up-cpu.XXXXXX.yaml)
trap 'rm -f "$LAB"; rmdir "$CG" 2>/dev/null || true' EXIT
cat >"$LAB" <<YAML
apiVersion: netlab.dev/v1alpha1
kind: Lab
metadata: {name: bench}
spec: {nodes: $NODES}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: w}
spec:
  replicas: $((NODES * PODS))
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: w}}
    spec: {containers: [{name: w, ports: [{containerPort: 8080}]}]}
YAML
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
for _ in $(seq "$R"); do
  for d in "$@"; do
    E=; lbl=$d
    if [[ $d == *@* ]]; then E=${d%@*}; E=${E//,/ }; d=${d#*@}; fi
    n=upcpu$RANDOM
    mkdir -p "$CG"
    b0=$(busy); t0=$EPOCHREALTIME
    bash -c "echo \$\$ > $CG/tasks; exec env $E $d/netlab up -f $LAB --name $n >/dev/null 2>&1" || echo "up failed: $lbl" >&2
    t1=$EPOCHREALTIME; b1=$(busy)
    u=$(cat "$CG/cpuacct.usage")
    roles=$(python3 "$HERE/up-roles.py" "$n")
    "$d/netlab" down --name "$n" --purge >/dev/null 2>&1
    echo "$lbl cpu=$((u / 1000000)) busy=$(((b1 - b0) * 10)) wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%d",(b-a)*1000}') load=$(cut -d' ' -f1 /proc/loadavg) $roles"
    sleep 0.5
    rmdir "$CG" 2>/dev/null || true
  done
done
