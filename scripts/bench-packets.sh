#!/usr/bin/env bash
# Packets and drops benchmarks (docs/performance.md, "Trace and drops (bench-packets)").
#
# One lab (the embedded default scenario plus a LoadBalancer Service "echo" in front of one
# pod), then two side-by-side comparisons, alternated A B A B ROUNDS times:
#   trace  A  curl of http://app.example/api from the client namespace (one request)
#          B  netlab trace of the same URL (packet sockets in every lab namespace, the
#             nf_tables rule trace of its flow, conntrack, the ingress log), wall time
#   drops  A  wrk through the echo Service's LB VIP, keep-alive, for DURATION
#          B  the same while `netlab drops --follow` runs for the lab
# Medians with min–max; a markdown table on stdout, progress on stderr. Traffic stays
# between lab namespaces; the lab is removed on exit, even on failure.
#
# Env: ROUNDS (5), DURATION (5s), CONNS (32), THREADS (2), NETLAB (default: built here).
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}

log() { printf 'bench-packets: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (network namespaces)"
command -v wrk >/dev/null || die "wrk is missing: BENCH=1 scripts/deps.sh"
command -v jq >/dev/null || die "jq is missing: BENCH=1 scripts/deps.sh"

tmp=$(mktemp -d /tmp/netlab-bench-packets.XXXXXX)
lab="bpk$$"
lab=${lab:0:24}
lab_up=0
drops_pid=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$drops_pid" ] && kill -INT "$drops_pid" 2>/dev/null && wait "$drops_pid" 2>/dev/null
  if [ "$lab_up" = 1 ]; then "$NETLAB" down --name "$lab" --purge >/dev/null 2>&1 || log "down $lab failed"; fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "${NETLAB:-}" ]; then
  GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
  CGO_ENABLED=0 "$GO" build -o "$tmp/" ./cmd/netlab ./cmd/netlab-pod ./cmd/netlab-agent # static, as make build links them; netlab finds netlab-pod and netlab-agent beside it
  NETLAB=$tmp/netlab
fi

cat netlab/scenario/default.yaml >"$tmp/lab.yaml"
cat >>"$tmp/lab.yaml" <<EOF
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: echo
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: http}]
EOF

log "netlab up --name $lab"
lab_up=1
"$NETLAB" up -f "$tmp/lab.yaml" --name "$lab" >"$tmp/up.out" 2>&1 || { cat "$tmp/up.out" >&2; die "up failed"; }
"$NETLAB" status --name "$lab" -o json >"$tmp/status.json"
vip=$(jq -r '.services[] | select(.name == "echo") | .loadBalancerIP' "$tmp/status.json")
client_ns=$(jq -r '.clients[0].namespace' "$tmp/status.json")
URL=http://app.example/api
ip netns exec "$client_ns" curl -fsS -m 3 -o /dev/null "$URL" || die "$URL does not answer"
"$NETLAB" trace --name "$lab" "$URL" >/dev/null || die "netlab trace $URL failed"

now() { date +%s.%N; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; printf "%s %s %s\n", m, v[1], v[NR]}'; }

# trace vs curl, wall time of the whole command.
T_A="" T_B="" T_R=""
for r in $(seq 1 "$ROUNDS"); do
  s=$(now); ip netns exec "$client_ns" curl -fsS -m 3 -o /dev/null "$URL"; e=$(now)
  a=$(awk -v s="$s" -v e="$e" 'BEGIN{printf "%.4f", e - s}')
  s=$(now); "$NETLAB" trace --name "$lab" "$URL" >/dev/null; e=$(now)
  b=$(awk -v s="$s" -v e="$e" 'BEGIN{printf "%.4f", e - s}')
  T_A+="$a "; T_B+="$b "; T_R+="$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", b / a}') "
  log "trace round $r/$ROUNDS: curl $a s, netlab trace $b s"
done

# wrk through the VIP, with and without `netlab drops --follow`.
run_wrk() {
  ip netns exec "$client_ns" wrk -t "$THREADS" -c "$CONNS" -d "$1" "http://$vip/" >"$tmp/wrk.out" 2>&1 || { cat "$tmp/wrk.out" >&2; die "wrk failed"; }
  awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.out"
}
run_wrk 1s >/dev/null
D_A="" D_B="" D_R=""
for r in $(seq 1 "$ROUNDS"); do
  a=$(run_wrk "$DURATION")
  "$NETLAB" drops --name "$lab" --follow >"$tmp/drops.out" 2>/dev/null &
  drops_pid=$!
  sleep 1 # the program is loaded and attached
  b=$(run_wrk "$DURATION")
  kill -INT "$drops_pid"; wait "$drops_pid" 2>/dev/null || true; drops_pid=
  D_A+="$a "; D_B+="$b "; D_R+="$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.4f", b / a}') "
  log "drops round $r/$ROUNDS: wrk $a req/s, with drops --follow $b req/s"
done

read -r ta ta0 ta1 < <(echo "$T_A" | median)
read -r tb tb0 tb1 < <(echo "$T_B" | median)
read -r tr tr0 tr1 < <(echo "$T_R" | median)
read -r da da0 da1 < <(echo "$D_A" | median)
read -r db db0 db1 < <(echo "$D_B" | median)
read -r dr dr0 dr1 < <(echo "$D_R" | median)
backend=$(iptables --version 2>/dev/null | sed -n 's/.*(\(.*\)).*/\1/p')
echo "kernel $(uname -r), $(nproc) CPUs, iptables ${backend:-?}, $ROUNDS rounds A B A B, shared machine"
echo
echo "| what | A (reference) | B (netlab) | B/A median (min–max) |"
echo "|---|---|---|---|"
echo "| trace wall time, s | curl $ta ($ta0–$ta1) | netlab trace $tb ($tb0–$tb1) | $tr ($tr0–$tr1) |"
echo "| L4 req/s through the VIP, keep-alive | wrk $da ($da0–$da1) | with drops --follow $db ($db0–$db1) | $dr ($dr0–$dr1) |"
