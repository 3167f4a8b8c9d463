#!/usr/bin/env bash
# Live-change benchmarks (docs/performance.md, "Live changes (bench-live)").
#
# Part 1, apply vs rebuild: a lab of NODES nodes and PODS echo pods (one Deployment) plus a
# small Service `probe`. Alternating A B ROUNDS times:
#   A  netlab apply of the same files with one change: the port of Service `probe`
#      (80 <-> 81) — until apply returns (every node's rules follow);
#   B  netlab down + netlab up of the same lab — what one had to do before `apply`.
# Part 2, rollout under load: a 3-replica Deployment behind the ingress; wrk through the
# ingress VIP (Host app.example) from the client, alternating ROUNDS times:
#   S  steady state: wrk for DURATION, nothing else;
#   R  rollout: wrk for DURATION while `netlab rollout restart deployment/web` runs.
# Reported: failed requests (socket errors + non-2xx) and p99 latency of each.
# A markdown table goes to stdout, progress to stderr. Traffic stays between lab
# namespaces. The labs are removed on exit, even on failure.
#
# Env: ROUNDS (5), NODES (3), PODS (300), DURATION (10s), CONNS (16), THREADS (2),
# PART (all | apply | rollout), NETLAB (a netlab binary; default: built from this tree).
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
NODES=${NODES:-3}
PODS=${PODS:-300}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
THREADS=${THREADS:-2}
PART=${PART:-all}

log() { printf 'bench-live: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (network namespaces)"

tmp=$(mktemp -d /tmp/netlab-bench-live.XXXXXX)
labs=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for l in "${labs[@]}"; do
    "$NETLAB" down --name "$l" --purge >/dev/null 2>&1 || log "netlab down --name $l failed"
  done
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

ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
minmax() { sort -n | awk 'NR==1{mn=$1} {mx=$1} END {print mn "–" mx}'; }

web() { # name replicas extra-pod-spec
  cat <<EOF
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: $1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 3
      containers:
      - name: web
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: http}}
        lifecycle: {preStop: {exec: {command: [sleep, "1"]}}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app}
spec:
  rules:
  - host: app.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
EOF
}

echo "## Live changes (bench-live): $(uname -r), $(nproc) CPUs, $(iptables --version), $(date -u +%Y-%m-%dT%H:%MZ)"
echo

if [ "$PART" = all ] || [ "$PART" = apply ]; then
  lab="bla$$"; lab=${lab:0:24}
  for port in 80 81; do
    {
      printf 'apiVersion: netlab.dev/v1alpha1\nkind: Lab\nmetadata: {name: %s}\nspec:\n  nodes: %s\n' "$lab" "$NODES"
      web "$PODS"
      printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: probe}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: %s, targetPort: http}]\n' "$port"
    } >"$tmp/apply-$port.yaml"
  done
  log "up: $NODES nodes, $PODS pods"
  labs+=("$lab")
  "$NETLAB" up -f "$tmp/apply-80.yaml" --timeout 120s >/dev/null
  port=80
  : >"$tmp/a"; : >"$tmp/b"; : >"$tmp/r"
  for i in $(seq "$ROUNDS"); do
    port=$((161 - port))
    t0=$(ms); out=$("$NETLAB" apply -f "$tmp/apply-$port.yaml"); t1=$(ms)
    grep -q "service/probe configured" <<<"$out" || die "apply did not configure service/probe: $out"
    a=$((t1 - t0))
    t0=$(ms); "$NETLAB" down --name "$lab" --purge >/dev/null; "$NETLAB" up -f "$tmp/apply-$port.yaml" --timeout 120s >/dev/null; t1=$(ms)
    b=$((t1 - t0))
    log "round $i: apply ${a} ms, down+up ${b} ms"
    echo "$a" >>"$tmp/a"; echo "$b" >>"$tmp/b"
    awk -v a="$a" -v b="$b" 'BEGIN {printf "%.4f\n", a/b}' >>"$tmp/r"
  done
  "$NETLAB" down --name "$lab" --purge >/dev/null
  echo "### apply of one changed Service, $PODS pods on $NODES nodes, vs down + up ($ROUNDS rounds, A B alternating)"
  echo
  echo "| what | median | min–max |"
  echo "|---|---|---|"
  echo "| netlab apply (service/probe configured) | $(median <"$tmp/a") ms | $(minmax <"$tmp/a") ms |"
  echo "| netlab down + netlab up | $(median <"$tmp/b") ms | $(minmax <"$tmp/b") ms |"
  echo "| ratio apply / (down+up), per round | $(median <"$tmp/r") | $(minmax <"$tmp/r") |"
  echo
fi

if [ "$PART" = all ] || [ "$PART" = rollout ]; then
  command -v wrk >/dev/null || die "wrk is missing: BENCH=1 scripts/deps.sh"
  lab="blr$$"; lab=${lab:0:24}
  { printf 'apiVersion: netlab.dev/v1alpha1\nkind: Lab\nmetadata: {name: %s}\nspec:\n  nodes: 2\n' "$lab"; web 3; } >"$tmp/roll.yaml"
  log "up: rollout lab"
  labs+=("$lab")
  "$NETLAB" up -f "$tmp/roll.yaml" >/dev/null
  vip=$("$NETLAB" status --name "$lab" -o json | sed -n 's/.*"vips": *\[ *{ *"ip": *"\([0-9.]*\)".*/\1/p' | head -1)
  vip=${vip:-203.0.113.100}
  runwrk() {
    ip netns exec "nl-$lab-client" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "Host: app.example" "http://$vip/" 2>&1
  }
  # p99 in ms and failures from wrk's report.
  p99() { awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}'; }
  fails() { awk '/Socket errors/ {gsub(/,/,""); n+=$4+$6+$8+$10} /Non-2xx/ {n+=$NF} END {print n+0}'; }
  reqs() { awk '/requests in/ {print $1}'; }
  : >"$tmp/sp"; : >"$tmp/rp"; : >"$tmp/sf"; : >"$tmp/rf"; : >"$tmp/pr"
  for i in $(seq "$ROUNDS"); do
    s=$(runwrk)
    runwrk >"$tmp/w" & w=$!
    sleep 1
    "$NETLAB" rollout restart --name "$lab" deployment/web >/dev/null
    wait "$w"
    r=$(cat "$tmp/w")
    sp=$(p99 <<<"$s"); rp=$(p99 <<<"$r")
    echo "$sp" >>"$tmp/sp"; echo "$rp" >>"$tmp/rp"
    fails <<<"$s" >>"$tmp/sf"; fails <<<"$r" >>"$tmp/rf"
    awk -v a="$rp" -v b="$sp" 'BEGIN {printf "%.2f\n", a/b}' >>"$tmp/pr"
    log "round $i: steady p99 ${sp} ms ($(reqs <<<"$s") requests, $(fails <<<"$s") failed); rollout p99 ${rp} ms ($(reqs <<<"$r") requests, $(fails <<<"$r") failed)"
  done
  "$NETLAB" down --name "$lab" --purge >/dev/null
  echo "### rollout restart of a 3-replica Deployment under wrk through the ingress VIP ($ROUNDS rounds of $DURATION, -c$CONNS -t$THREADS, steady and rollout alternating)"
  echo
  echo "| what | failed requests (sum) | p99 median | p99 min–max |"
  echo "|---|---|---|---|"
  echo "| steady state | $(awk '{n+=$1} END {print n+0}' "$tmp/sf") | $(median <"$tmp/sp") ms | $(minmax <"$tmp/sp") ms |"
  echo "| during rollout restart | $(awk '{n+=$1} END {print n+0}' "$tmp/rf") | $(median <"$tmp/rp") ms | $(minmax <"$tmp/rp") ms |"
  echo "| p99 ratio rollout / steady, per round | | $(median <"$tmp/pr") | $(minmax <"$tmp/pr") |"
  echo
fi
