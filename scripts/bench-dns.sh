#!/usr/bin/env bash
# Cluster DNS benchmark (docs/performance.md, "Cluster DNS (bench-dns)").
#
# One lab: 2 nodes, the cluster DNS with ONE replica (coredns-1), an echo Deployment and a
# few Services. dnsperf, from the namespace of a pod on the other node, sends the same
# A queries (names of the lab's Services) for DURATION, alternating A B C ROUNDS times:
#   A  netlab through kube-dns: to 10.96.0.10:53 (kube-proxy DNAT to coredns-1);
#   B  netlab directly: to coredns-1's pod IP, port 53 (the same agent, no DNAT);
#   C  reference: dnsmasq (Debian's, the binary only) inside coredns-1's namespace, on the
#      pod IP port 5353, answering the same names from a static hosts file, TTL 5 s, no
#      upstream.
# B/C is the DNS agent against dnsmasq on the same path; A/B is the price of kube-proxy's
# UDP rules. A markdown table goes to stdout, progress to stderr. Traffic stays between lab
# namespaces. The lab and dnsmasq are removed on exit, even on failure.
#
# Env: ROUNDS (5), DURATION (5, seconds), CLIENTS (4, dnsperf -c), OUTSTANDING (100,
# dnsperf -q), NETLAB (a netlab binary; default: built from this tree into a temp dir).
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-100}

log() { printf 'bench-dns: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (network namespaces)"
command -v dnsperf >/dev/null || die "dnsperf is missing: BENCH=1 scripts/deps.sh"
[ -x /usr/sbin/dnsmasq ] || die "dnsmasq is missing: BENCH=1 scripts/deps.sh"
command -v jq >/dev/null || die "jq is missing: BENCH=1 scripts/deps.sh"

tmp=$(mktemp -d /tmp/netlab-bench-dns.XXXXXX)
lab="bdns$$"
lab=${lab:0:24}
lab_up=0
dnsmasq_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$dnsmasq_pid" ]; then kill "$dnsmasq_pid" 2>/dev/null || true; fi
  if [ "$lab_up" = 1 ]; then
    "$NETLAB" down --name "$lab" --purge >/dev/null 2>&1 || log "netlab down --name $lab failed"
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "${NETLAB:-}" ]; then
  GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
  log "building netlab into $tmp"
  CGO_ENABLED=0 "$GO" build -o "$tmp/" ./cmd/netlab ./cmd/netlab-pod ./cmd/netlab-agent # static, as make build links them; netlab finds netlab-pod and netlab-agent beside it
  NETLAB=$tmp/netlab
fi
[ -x "$NETLAB" ] || die "$NETLAB is not executable"

cat >"$tmp/lab.yaml" <<EOF
apiVersion: netlab.dev/v1alpha1
kind: Lab
metadata: {name: $lab}
spec:
  nodes: 2
  dns: {replicas: 1}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, ports: [{name: http, containerPort: 8080}]}]}
EOF
for s in web api cart search; do
  cat >>"$tmp/lab.yaml" <<EOF
---
apiVersion: v1
kind: Service
metadata: {name: $s}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}
EOF
done

log "up $lab"
lab_up=1
"$NETLAB" up -f "$tmp/lab.yaml" >/dev/null
"$NETLAB" status --name "$lab" -o json >"$tmp/status.json"
dns_ip=$(jq -r '.services[] | select(.name=="kube-dns") | .clusterIP' "$tmp/status.json")
dns_pod_ip=$(jq -r '.pods[] | select(.name=="coredns-1") | .ip' "$tmp/status.json")
dns_node=$(jq -r '.pods[] | select(.name=="coredns-1") | .node' "$tmp/status.json")
from=$(jq -r --arg n "$dns_node" '[.pods[] | select(.node!=$n and .k8sNamespace=="default")][0].name' "$tmp/status.json")
[ -n "$from" ] && [ "$from" != null ] || die "no pod on another node than coredns-1"
from_ns="nl-$lab-$from"
dns_ns="nl-$lab-coredns-1"

# The same names for both servers: every ClusterIP Service of the lab.
: >"$tmp/queries"
: >"$tmp/hosts"
jq -r '.services[] | select(.clusterIP != "None" and .clusterIP != "") | "\(.name) \(.namespace) \(.clusterIP)"' "$tmp/status.json" |
  while read -r name ns ip; do
    fq="$name.$ns.svc.cluster.local"
    printf '%s A\n' "$fq" >>"$tmp/queries"
    printf '%s\t%s\n' "$ip" "$fq" >>"$tmp/hosts"
  done
log "$(wc -l <"$tmp/queries") names; dnsperf from $from ($from_ns); coredns-1 $dns_pod_ip on $dns_node"

ip netns exec "$dns_ns" /usr/sbin/dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
  --addn-hosts="$tmp/hosts" --local=/cluster.local/ --local-ttl=5 --port=5353 --listen-address="$dns_pod_ip" \
  --bind-interfaces --user=root --pid-file= --log-facility=/dev/null &
dnsmasq_pid=$!
# Both servers answer before the rounds start.
for target in "$dns_ip 53" "$dns_pod_ip 53" "$dns_pod_ip 5353"; do
  set -- $target
  for _ in $(seq 50); do
    if ip netns exec "$from_ns" dig +short +time=1 +tries=1 -p "$2" @"$1" web.default.svc.cluster.local A | grep -q .; then
      continue 2
    fi
    sleep 0.1
  done
  die "no answer from $1:$2"
done

agent_pid=""
for p in $(ip netns pids "$dns_ns"); do
  if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = netlab ]; then agent_pid=$p; fi
done
[ -n "$agent_pid" ] || die "no DNS agent process in $dns_ns"
hz=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system clock ticks

run() { # server port pid -> "queries/s  server CPU microseconds per query"
  local c0 c1 out
  c0=$(cpu "$3")
  out=$(ip netns exec "$from_ns" dnsperf -s "$1" -p "$2" -d "$tmp/queries" -l "$DURATION" -c "$CLIENTS" -q "$OUTSTANDING" 2>&1)
  c1=$(cpu "$3")
  awk -v c=$((c1 - c0)) -v hz="$hz" '/Queries completed:/ {n=$3} /Queries per second:/ {q=$4} /Queries lost:/ {lost=$3}
    END {if (lost+0 > 0) printf "lost %s\n", lost > "/dev/stderr"; printf "%s %.2f\n", q, c * 1e6 / hz / n}' <<<"$out"
}

declare -a A B C Acpu Bcpu Ccpu
for r in $(seq "$ROUNDS"); do
  read -r A[r] Acpu[r] < <(run "$dns_ip" 53 "$agent_pid")
  read -r B[r] Bcpu[r] < <(run "$dns_pod_ip" 53 "$agent_pid")
  read -r C[r] Ccpu[r] < <(run "$dns_pod_ip" 5353 "$dnsmasq_pid")
  log "round $r: kube-dns ${A[r]%.*}  pod IP ${B[r]%.*}  dnsmasq ${C[r]%.*} q/s; server CPU per query ${Acpu[r]} ${Bcpu[r]} ${Ccpu[r]} us"
done

stats() { # format values... -> "median (min-max)"
  local f=$1
  shift
  printf '%s\n' "$@" | sort -g | awk -v f="$f" '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf f " (" f "-" f ")", m, v[1], v[NR]}'
}
ratios() { # list a, list b -> a/b per round
  local -n x=$1 y=$2
  for r in $(seq "$ROUNDS"); do awk -v a="${x[r]}" -v b="${y[r]}" 'BEGIN {printf "%.3f\n", a/b}'; done
}
mapfile -t AB < <(ratios A B)
mapfile -t BC < <(ratios B C)
mapfile -t AC < <(ratios A C)
mapfile -t CPU < <(ratios Ccpu Bcpu)

kernel=$(uname -r)
cpus=$(nproc)
backend=$(iptables --version | sed -n 's/.*(\(.*\)).*/\1/p')
cat <<EOF
| path (dnsperf -c $CLIENTS -q $OUTSTANDING, ${DURATION}s, $ROUNDS rounds) | queries/s, median (min-max) | server CPU per query, µs |
|---|---|---|
| A netlab DNS agent through kube-dns $dns_ip (kube-proxy DNAT) | $(stats %.0f "${A[@]}") | $(stats %.1f "${Acpu[@]}") |
| B netlab DNS agent on its pod IP $dns_pod_ip | $(stats %.0f "${B[@]}") | $(stats %.1f "${Bcpu[@]}") |
| C dnsmasq $(/usr/sbin/dnsmasq --version | head -1 | awk '{print $3}') in the same namespace, static hosts file | $(stats %.0f "${C[@]}") | $(stats %.1f "${Ccpu[@]}") |
| ratio B/C (agent vs dnsmasq, same path) | $(stats %.2f "${BC[@]}") | |
| ratio A/C (through kube-dns vs dnsmasq direct) | $(stats %.2f "${AC[@]}") | |
| ratio A/B (the price of kube-proxy's UDP rules) | $(stats %.2f "${AB[@]}") | |
| CPU efficiency C/B (dnsmasq's CPU per query / the agent's; ≥ 0.8 is the target's sense) | | $(stats %.2f "${CPU[@]}") |

kernel $kernel, $cpus CPUs, iptables $backend; ratios are per round (A B C side by side). CPU is the
server process's user + system time over the run (/proc/PID/stat) divided by the queries it
answered: it depends much less than queries/s on what else the machine runs.
EOF
