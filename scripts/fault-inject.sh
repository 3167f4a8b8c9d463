#!/usr/bin/env bash
# Fault injection (docs/performance.md, "Faults and repair (fault-inject)").
#
# Brings up the default lab under a unique name, then for each fault runs CONNS clients
# in the client namespace, each opening a new connection per request to the ingress VIP
# (http://app.example/ through the LB), injects the fault after BEFORE and keeps the load
# for AFTER. Per fault it prints the requests that failed before the fault, inside the
# fault's window (injection until the lab repaired or routed around it) and after it, and
# the window's length. The lab is removed on exit, even on failure. Traffic stays between
# lab namespaces; net.ipv4.tcp_tw_reuse=1 is set in the client's namespace only, so that
# TIME_WAIT does not exhaust its ports (the host is not touched).
#
# Every fault runs ROUNDS times, in turn (A B C A B C ...); the table gives medians with
# min-max. A window of -1 means the lab had not repaired within AFTER.
#
# Env: CONNS (200), ROUNDS (5), BEFORE (2s), AFTER (8s), FAULTS (all; see scripts/faultinject),
# OUT (table | json), NETLAB (a netlab binary; default: built from this tree).
set -euo pipefail

cd "$(dirname "$0")/.."
CONNS=${CONNS:-200}
ROUNDS=${ROUNDS:-5}
BEFORE=${BEFORE:-2s}
AFTER=${AFTER:-8s}
FAULTS=${FAULTS:-pod-kill,node-fail,kill-pod,kill-kube-proxy,kill-ingress,kill-lb,kill-controller,kill-supervisor}
OUT=${OUT:-table}
export PATH="/usr/local/go/bin:$PATH"

tmp=$(mktemp -d)
if [ -z "${NETLAB:-}" ]; then
  CGO_ENABLED=0 go build -o "$tmp/netlab" ./cmd/netlab # static, as make build links it
  NETLAB="$tmp/netlab"
fi
go build -o "$tmp/faultinject" ./scripts/faultinject
LAB="fault$$"
cleanup() { "$NETLAB" down --name "$LAB" --purge >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT

"$NETLAB" up --name "$LAB" >&2
ip netns exec "nl-$LAB-client" sysctl -qw net.ipv4.tcp_tw_reuse=1
echo "kernel $(uname -r), $(nproc) CPUs, $(iptables -V); load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$tmp/faultinject" -netlab "$NETLAB" -name "$LAB" -conns "$CONNS" -rounds "$ROUNDS" -before "$BEFORE" -after "$AFTER" -faults "$FAULTS" -o "$OUT"
