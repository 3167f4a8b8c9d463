#!/usr/bin/env bash
# L4 path benchmark (docs/performance.md, "L4 path (bench-l4)").
#
# One lab: 2 nodes, one client, an echo Deployment (REPLICAS, default 1) behind a
# `type: LoadBalancer` Service. wrk, with the same settings, alternates A B A B ROUNDS times,
# with keep-alive and with `Connection: close`:
#   A  reference: from the namespace of the node that runs the first pod, to that pod's IP
#      directly (node -> cni bridge -> pod);
#   B  netlab: from the client namespace to the Service's LB VIP (client -> LB, DNAT to a
#      node's NodePort -> kube-proxy DNAT -> pod, on this node or across the fabric).
#   C  diagnostic (NODEPORT=1, the default): from the client namespace to the NodePort of
#      a second Service (type NodePort, same pod) on the pod's node (the LB only routes; no LB DNAT, no cross-node hop). B/C is the
#      price of the LB's virtual service, C/A the price of client -> node + kube-proxy.
# With one replica all hit the very same pod process, so the ratio B/A is the cost of the
# path alone. Each path has its own pod port (8080 for B, 8081 for A, 8082 for C, all served
# by the same echo process): kube-proxy masquerades NodePort traffic to the node's address,
# the same source A uses, and with `Connection: close` the pod's TIME_WAIT sockets from one
# path would otherwise collide (PAWS) with another path's new connections and stall them. A markdown table goes to stdout, progress to stderr. Traffic stays between
# lab namespaces. The lab is removed on exit, even on failure.
#
# `Connection: close` at these rates (5-15k connections/s) runs into TIME_WAIT: wrk and the
# echo both close, so both ends keep TIME_WAIT for 60 s; wrk's namespace runs out of free
# ephemeral ports for one destination (28k) within a round, and through kube-proxy's
# MASQUERADE --random-fully the pod's TIME_WAIT sockets reject new SYNs on a colliding
# 4-tuple (PAWS), each costing the client a 1 s SYN retransmit. The table reports both
# counters. TCP_TUNE=1 removes these artefacts to show the cost of the path itself:
# net.ipv4.tcp_tw_reuse=1 in the namespaces wrk runs in and net.ipv4.tcp_max_tw_buckets=0
# in the pod's namespace (lab namespaces only; the host is not touched).
#
# Env: ROUNDS (5), DURATION (5s), CONNS (32), THREADS (2), REPLICAS (1), TCP_TUNE (0),
# NETLAB (a netlab binary; default: built from this tree into a temporary directory).
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
REPLICAS=${REPLICAS:-1}
TCP_TUNE=${TCP_TUNE:-0}
NODEPORT=${NODEPORT:-1}

log() { printf 'bench-l4: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (network namespaces)"
command -v wrk >/dev/null || die "wrk is missing: BENCH=1 scripts/deps.sh"
command -v jq >/dev/null || die "jq is missing: apt-get install jq"

tmp=$(mktemp -d /tmp/netlab-bench-l4.XXXXXX)
lab="bl4x$$"
lab=${lab:0:24}
lab_up=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
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
  clients: [{name: client}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: $REPLICAS
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: echo
        ports: [{name: http, containerPort: 8080}, {name: direct, containerPort: 8081}, {name: np, containerPort: 8082}]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: echonp}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: np}]
EOF

log "netlab up --name $lab"
lab_up=1
"$NETLAB" up -f "$tmp/lab.yaml" --name "$lab" >"$tmp/up.out" 2>&1 || { cat "$tmp/up.out" >&2; die "netlab up failed"; }
"$NETLAB" status --name "$lab" -o json >"$tmp/status.json"
vip=$(jq -r '.services[] | select(.name == "echo") | .loadBalancerIP // empty' "$tmp/status.json")
svc_port=$(jq -r '.services[] | select(.name == "echo") | .ports[0].port' "$tmp/status.json")
pod_ip=$(jq -r '[.pods[] | select(.labels.app == "echo")][0].ip' "$tmp/status.json")
node_port=$(jq -r '.services[] | select(.name == "echonp") | .ports[0].nodePort' "$tmp/status.json")
pod_node=$(jq -r '[.pods[] | select(.labels.app == "echo")][0].node' "$tmp/status.json")
node_ns=$(jq -r --arg n "$pod_node" '.nodes[] | select(.name == $n) | .namespace' "$tmp/status.json")
client_ns=$(jq -r '.clients[0].namespace' "$tmp/status.json")
[ -n "$vip" ] || die "the echo Service got no LB VIP"
URL_A="http://$pod_ip:8081/"
URL_B="http://$vip:$svc_port/"
node_ip=$(jq -r --arg n "$pod_node" '.nodes[] | select(.name == $n) | .ip' "$tmp/status.json")
URL_C="http://$node_ip:$node_port/"
log "A: $node_ns -> $URL_A   B: $client_ns -> $URL_B"

if [ "$TCP_TUNE" = 1 ]; then
  for ns in "$node_ns" "$client_ns"; do ip netns exec "$ns" sysctl -qw net.ipv4.tcp_tw_reuse=1; done
  for ns in $(jq -r '.pods[] | select(.labels.app == "echo") | .namespace' "$tmp/status.json"); do
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_max_tw_buckets=0
  done
  log "TCP_TUNE=1: tcp_tw_reuse=1 in $node_ns and $client_ns, tcp_max_tw_buckets=0 in the echo pods"
fi

# Both must answer before we measure.
ip netns exec "$node_ns" curl -fsS -m 3 -o /dev/null "$URL_A" || die "A ($URL_A from $node_ns) does not answer"
ip netns exec "$client_ns" curl -fsS -m 3 -o /dev/null "$URL_B" || die "B ($URL_B from $client_ns) does not answer"
if [ "$NODEPORT" = 1 ]; then
  ip netns exec "$client_ns" curl -fsS -m 3 -o /dev/null "$URL_C" || die "C ($URL_C from $client_ns) does not answer"
fi

# counter NS NAME: a kernel TCP counter of namespace NS (nstat, absolute, history untouched).
counter() { ip netns exec "$1" nstat -asz "$2" | awk -v n="$2" '$1 == n {v = $2} END {print v + 0}'; }
pod_ns=$(jq -r '[.pods[] | select(.labels.app == "echo")][0].namespace' "$tmp/status.json")

# run_wrk NS URL DURATION [extra wrk args...]: sets RPS, P99 (ms), ERRS (socket errors + non-2xx),
# SYNRT (SYN retransmissions of the wrk namespace) and PAWS (SYNs the pod rejected because a
# TIME_WAIT socket held the same 4-tuple with a newer timestamp).
run_wrk() {
  local ns=$1 url=$2 d=$3 s0 p0
  shift 3
  s0=$(counter "$ns" TcpExtTCPSynRetrans)
  p0=$(counter "$pod_ns" TcpExtPAWSTimewait)
  ip netns exec "$ns" wrk -t "$THREADS" -c "$CONNS" -d "$d" --latency "$@" "$url" >"$tmp/wrk.out" 2>&1 || {
    cat "$tmp/wrk.out" >&2
    die "wrk failed in $ns for $url"
  }
  read -r RPS P99 ERRS < <(awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^Requests\/sec:/ { rps = $2 }
    /^ +99%/ { p99 = ms($2) }
    /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { err += $5 }
    END { printf "%.1f %.3f %d\n", rps, p99, err }' "$tmp/wrk.out")
  SYNRT=$(($(counter "$ns" TcpExtTCPSynRetrans) - s0))
  PAWS=$(($(counter "$pod_ns" TcpExtPAWSTimewait) - p0))
}

MODES=(keepalive close)
declare -A HDR=([keepalive]="" [close]="Connection: close")
wrk_args() { if [ -n "${HDR[$1]}" ]; then printf '%s\n' -H "${HDR[$1]}"; fi; }

# Warm-up: pools, ARP, conntrack, page cache.
for m in "${MODES[@]}"; do
  mapfile -t xa < <(wrk_args "$m")
  run_wrk "$node_ns" "$URL_A" 1s "${xa[@]}"
  run_wrk "$client_ns" "$URL_B" 1s "${xa[@]}"
  if [ "$NODEPORT" = 1 ]; then run_wrk "$client_ns" "$URL_C" 1s "${xa[@]}"; fi
done

declare -A SYN_A SYN_B SYN_C PAWS_A PAWS_B PAWS_C A_RPS B_RPS C_RPS A_P99 B_P99 C_P99 RATIO RATIO_BC RATIO_CA ERRORS
for r in $(seq 1 "$ROUNDS"); do
  for m in "${MODES[@]}"; do
    mapfile -t xa < <(wrk_args "$m")
    run_wrk "$node_ns" "$URL_A" "$DURATION" "${xa[@]}"
    a=$RPS; A_RPS[$m]+="$RPS "; A_P99[$m]+="$P99 "; ERRORS[$m]=$((${ERRORS[$m]:-0} + ERRS))
    SYN_A[$m]=$((${SYN_A[$m]:-0} + SYNRT)); PAWS_A[$m]=$((${PAWS_A[$m]:-0} + PAWS))
    run_wrk "$client_ns" "$URL_B" "$DURATION" "${xa[@]}"
    b=$RPS; B_RPS[$m]+="$RPS "; B_P99[$m]+="$P99 "; ERRORS[$m]=$((${ERRORS[$m]:-0} + ERRS))
    SYN_B[$m]=$((${SYN_B[$m]:-0} + SYNRT)); PAWS_B[$m]=$((${PAWS_B[$m]:-0} + PAWS))
    q=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.4f", b / a}')
    RATIO[$m]+="$q "
    line="round $r/$ROUNDS $m: A pod direct $a req/s, B LB VIP $b req/s, B/A $q"
    if [ "$NODEPORT" = 1 ]; then
      run_wrk "$client_ns" "$URL_C" "$DURATION" "${xa[@]}"
      c=$RPS; C_RPS[$m]+="$RPS "; C_P99[$m]+="$P99 "; ERRORS[$m]=$((${ERRORS[$m]:-0} + ERRS))
      SYN_C[$m]=$((${SYN_C[$m]:-0} + SYNRT)); PAWS_C[$m]=$((${PAWS_C[$m]:-0} + PAWS))
      RATIO_BC[$m]+="$(awk -v b="$b" -v c="$c" 'BEGIN{printf "%.4f", b / c}') "
      RATIO_CA[$m]+="$(awk -v a="$a" -v c="$c" 'BEGIN{printf "%.4f", c / a}') "
      line+=", C NodePort $c req/s"
    fi
    log "$line"
  done
done

# stats "n n n" -> "median min max"
stats() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{m = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; print m, a[1], a[NR]}'; }
fmt() { # median min max decimals unit
  awk -v m="$1" -v lo="$2" -v hi="$3" -v d="$4" -v u="$5" 'BEGIN{f = "%." d "f"; printf f u " (" f "–" f ")", m, lo, hi}'
}

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain 2>/dev/null | head -n1)" ] || commit+=" (dirty tree)"
cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
echo "### L4 path — $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "kernel $(uname -r), $(nproc) CPUs (${cpu:-unknown}), $(iptables --version 2>/dev/null || echo 'iptables ?'), $(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}'), netlab $commit"
echo
echo "wrk -t $THREADS -c $CONNS -d $DURATION --latency, $ROUNDS rounds alternating A B$([ "$NODEPORT" = 1 ] && echo ' C') …; $REPLICAS echo pod(s). A = pod IP directly from its node's namespace ($URL_A), B = client namespace → LB VIP of a \`type: LoadBalancer\` Service ($URL_B: LB DNAT → NodePort on either node → kube-proxy → pod). Median (min–max) over the rounds; the ratio is per round. TCP_TUNE=$TCP_TUNE$([ "$TCP_TUNE" = 1 ] && echo ' (tcp_tw_reuse=1 where wrk runs, tcp_max_tw_buckets=0 in the pod)')."
echo
echo "| connections | A: pod direct req/s | B: LB VIP req/s | B/A | A p99 | B p99 | errors | SYN retransmits A / B | PAWS-rejected SYNs at the pod A / B |"
echo "|---|---|---|---|---|---|---|---|---|"
for m in "${MODES[@]}"; do
  read -r am al ah < <(stats "${A_RPS[$m]}")
  read -r bm bl bh < <(stats "${B_RPS[$m]}")
  read -r qm ql qh < <(stats "${RATIO[$m]}")
  read -r pam pal pah < <(stats "${A_P99[$m]}")
  read -r pbm pbl pbh < <(stats "${B_P99[$m]}")
  label=keep-alive
  [ "$m" = close ] && label='`Connection: close`'
  echo "| $label | $(fmt "$am" "$al" "$ah" 0 "") | $(fmt "$bm" "$bl" "$bh" 0 "") | **$(fmt "$qm" "$ql" "$qh" 3 ×)** | $(fmt "$pam" "$pal" "$pah" 2 " ms") | $(fmt "$pbm" "$pbl" "$pbh" 2 " ms") | ${ERRORS[$m]} | ${SYN_A[$m]} / ${SYN_B[$m]} | ${PAWS_A[$m]} / ${PAWS_B[$m]} |"
done
if [ "$NODEPORT" = 1 ]; then
  echo
  echo "Diagnostic, same rounds: C = client namespace → NodePort of the pod's node ($URL_C; the LB only routes)."
  echo
  echo "| connections | C: NodePort req/s | C/A (client→node + kube-proxy) | B/C (LB virtual service + cross-node) | C p99 | C SYN retransmits | C PAWS-rejected SYNs |"
  echo "|---|---|---|---|---|---|---|"
  for m in "${MODES[@]}"; do
    read -r cm cl ch < <(stats "${C_RPS[$m]}")
    read -r x1 x2 x3 < <(stats "${RATIO_CA[$m]}")
    read -r y1 y2 y3 < <(stats "${RATIO_BC[$m]}")
    read -r pcm pcl pch < <(stats "${C_P99[$m]}")
    label=keep-alive
    [ "$m" = close ] && label='`Connection: close`'
    echo "| $label | $(fmt "$cm" "$cl" "$ch" 0 "") | $(fmt "$x1" "$x2" "$x3" 3 ×) | $(fmt "$y1" "$y2" "$y3" 3 ×) | $(fmt "$pcm" "$pcl" "$pch" 2 " ms") | ${SYN_C[$m]} | ${PAWS_C[$m]} |"
  done
fi
echo
echo "Target: B ≥ 0.9× A (moonshot ≥ 0.97×)."
