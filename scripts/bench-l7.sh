#!/usr/bin/env bash
# L7 path benchmark (docs/performance.md, "L7 path (bench-l7)").
#
# One lab: 2 nodes, one client, an echo Deployment (REPLICAS, default 1) behind ClusterIP
# Services and an Ingress (small.bench -> Service echo; big.bench -> Service big). In the
# SAME namespace as node-1's netlab ingress, nginx (Debian nginx-light) is started on
# NGINX_PORT as a second ingress with the same routing: Host-based, keep-alive upstream
# pool to the very same Service ClusterIP:port, the same forwarding headers, an access
# log. wrk (keep-alive, same settings) alternates, ROUNDS times, per response size:
#   N  nginx:  client -> node-1:NGINX_PORT (nginx) -> ClusterIP (kube-proxy) -> pod
#   D  netlab: client -> node-1:80 (netlab ingress agent) -> ClusterIP -> pod
#   V  netlab: client -> ingress VIP:80 (LB, rr over both nodes' ingress) -> ClusterIP -> pod
# Sizes: "small" is the echo's JSON (~0.7 KiB). "64k" is a 65536-byte static body: the
# echo agent has no option for a large body, so for the Service "big" (targetPort 8090 of
# the echo pods) each pod namespace gets a REDIRECT 8090 -> 8091 and an nginx serving the
# file on 8091; both proxies under test proxy to that same upstream.
# It also reads the proxies' CPU time (/proc/PID/stat) to report CPU µs per request.
# Markdown on stdout, progress on stderr. Traffic stays between lab namespaces. On exit it
# stops the nginx processes it started (by PID) and removes its lab.
#
# Env: ROUNDS (5), DURATION (5s), CONNS (32), THREADS (2), REPLICAS (1), SIZES ("small 64k"),
# NGINX_PORT (8081), NETLAB (a netlab binary; default: built from this tree into a temp dir).
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
REPLICAS=${REPLICAS:-1}
SIZES=${SIZES:-"small 64k"}
NGINX_PORT=${NGINX_PORT:-8081}
BIG_PORT=8091 # the static upstream inside the pod namespaces

log() { printf 'bench-l7: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (network namespaces)"
for t in wrk nginx jq curl; do command -v "$t" >/dev/null || die "$t is missing: BENCH=1 scripts/deps.sh (jq: apt-get install jq)"; done
NGINX=$(command -v nginx)

tmp=$(mktemp -d /tmp/netlab-bench-l7.XXXXXX)
chmod 0755 "$tmp"
lab="bl7x$$"
lab=${lab:0:24}
lab_up=0
nginx_pids=() # every nginx master and worker we started
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local p
  for p in "${nginx_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local alive=0
    for p in "${nginx_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.3
  done
  for p in "${nginx_pids[@]}"; do
    if kill -0 "$p" 2>/dev/null && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = nginx ]; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  if [ "$lab_up" = 1 ]; then
    "$NETLAB" down --name "$lab" >/dev/null 2>&1 || log "netlab down --name $lab failed"
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
  "$GO" build -o "$tmp/" ./cmd/netlab ./cmd/netlab-pod # netlab finds netlab-pod beside it
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
        ports: [{name: http, containerPort: 8080}, {name: big, containerPort: 8090}]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: big}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: big}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench}
spec:
  ingressClassName: netlab
  rules:
  - host: small.bench
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: echo, port: {number: 80}}}}
  - host: big.bench
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: big, port: {number: 80}}}}
EOF

log "netlab up --name $lab"
lab_up=1
"$NETLAB" up -f "$tmp/lab.yaml" --name "$lab" >"$tmp/up.out" 2>&1 || { cat "$tmp/up.out" >&2; die "netlab up failed"; }
"$NETLAB" status --name "$lab" -o json >"$tmp/status.json"
st() { jq -r "$@" "$tmp/status.json"; }
node_ns=$(st '.nodes[] | select(.name == "node-1") | .namespace')
node_ip=$(st '.nodes[] | select(.name == "node-1") | .ip')
client_ns=$(st '.clients[0].namespace')
vip=$(st '.loadBalancer.vips[] | select(.port == 80 and (.name | startswith("ingress"))) | .ip' | head -n1)
[ -n "$vip" ] || vip=$(st '.loadBalancer.vips[0].ip')
declare -A UPSTREAM=(
  [small]=$(st '.services[] | select(.name == "echo") | "\(.clusterIP):\(.ports[0].port)"')
  [64k]=$(st '.services[] | select(.name == "big") | "\(.clusterIP):\(.ports[0].port)"')
)
declare -A HOST=([small]=small.bench [64k]=big.bench)

# The netlab ingress agent of node-1: the process in node-1's namespace running `agent ingress`.
ingress_pid=""
for p in $(ip netns pids "$node_ns"); do
  if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q 'agent ingress'; then ingress_pid=$p; break; fi
done
[ -n "$ingress_pid" ] || die "no netlab ingress agent found in $node_ns"

# start_nginx NS CONF NAME: starts nginx in NS in the foreground of a background job, waits for
# its workers, records master and workers in nginx_pids; sets NGINX_PIDS to them.
start_nginx() {
  local ns=$1 conf=$2 name=$3 master w
  ip netns exec "$ns" "$NGINX" -p "$tmp/$name" -e "$tmp/$name/error.log" -c "$conf" \
    -g "daemon off; pid $tmp/$name/nginx.pid;" >"$tmp/$name/stdout" 2>&1 &
  master=$!
  nginx_pids+=("$master")
  for _ in $(seq 1 50); do
    kill -0 "$master" 2>/dev/null || { cat "$tmp/$name/stdout" "$tmp/$name/error.log" >&2 2>/dev/null; die "nginx $name exited"; }
    w=$(pgrep -P "$master" | tr '\n' ' ' || true)
    [ -n "$w" ] && break
    sleep 0.1
  done
  [ -n "$w" ] || die "nginx $name started no worker"
  NGINX_PIDS="$master $w"
  for p in $w; do nginx_pids+=("$p"); done
}

# The 64 KiB upstream: in every echo pod namespace, 8090 is redirected to an nginx on 8091
# that serves a 65536-byte file (the echo agent itself keeps 8080 and its readiness).
if [[ " $SIZES " == *" 64k "* ]]; then
  mkdir -p "$tmp/www"
  head -c 65536 /dev/zero | tr '\0' 'x' >"$tmp/www/64k"
  i=0
  for pns in $(st '.pods[] | select(.labels.app == "echo") | .namespace'); do
    i=$((i + 1))
    d="$tmp/static$i"
    mkdir -p "$d"
    cat >"$d/nginx.conf" <<EOF
user root;
worker_processes auto;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path $d/cb; proxy_temp_path $d/pt; fastcgi_temp_path $d/ft; uwsgi_temp_path $d/ut; scgi_temp_path $d/st;
  server {
    listen $BIG_PORT;
    default_type application/octet-stream;
    root $tmp/www;
    location / { try_files /64k =404; }
  }
}
EOF
    ip netns exec "$pns" iptables -t nat -A PREROUTING -p tcp --dport 8090 -j REDIRECT --to-ports "$BIG_PORT"
    start_nginx "$pns" "$d/nginx.conf" "static$i"
  done
fi

# nginx as the ingress of node-1, on NGINX_PORT: what ingress-nginx would configure for the
# same Ingress (Host routing, HTTP/1.1 keep-alive upstream pool, X-Forwarded-*, X-Real-IP,
# X-Request-ID, an access log written per request like netlab's).
d="$tmp/ingress"
mkdir -p "$d"
{
  cat <<EOF
user root;
worker_processes auto; # all CPUs, like the Go agent (GOMAXPROCS = CPUs)
events { worker_connections 4096; }
http {
  log_format bench '{"time":"\$time_iso8601","requestID":"\$request_id","client":"\$remote_addr","host":"\$host","path":"\$uri","status":\$status,"bytes":\$body_bytes_sent,"duration":\$request_time,"upstream":"\$upstream_addr"}';
  access_log $d/access.log bench;
  client_body_temp_path $d/cb; proxy_temp_path $d/pt; fastcgi_temp_path $d/ft; uwsgi_temp_path $d/ut; scgi_temp_path $d/st;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  proxy_buffers 16 16k;
  proxy_buffer_size 16k;
  # reuseport: one accept queue per worker, as ingress-nginx configures it (reuse-port: true).
  server { listen $NGINX_PORT default_server reuseport; return 404 "no ingress rule matched this host and path\n"; }
EOF
  for s in small 64k; do
    cat <<EOF
  upstream up_$s { server ${UPSTREAM[$s]}; keepalive 1024; keepalive_requests 1000000; }
  server {
    listen $NGINX_PORT;
    server_name ${HOST[$s]};
    location / {
      proxy_pass http://up_$s;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header X-Forwarded-Port \$server_port;
      proxy_set_header X-Request-ID \$request_id;
      add_header X-Request-ID \$request_id always;
      add_header X-Netlab-Ingress-Node nginx-node-1 always;
    }
  }
EOF
  done
  echo "}"
} >"$d/nginx.conf"
start_nginx "$node_ns" "$d/nginx.conf" ingress
INGRESS_NGINX_PIDS=$NGINX_PIDS
log "nginx ingress in $node_ns on :$NGINX_PORT (pids $INGRESS_NGINX_PIDS); netlab ingress agent pid $ingress_pid"

declare -A URL=([N]="http://$node_ip:$NGINX_PORT/" [D]="http://$node_ip:80/" [V]="http://$vip:80/")
declare -A NAME=([N]="nginx, node-1:$NGINX_PORT" [D]="netlab ingress, node-1:80" [V]="netlab via VIP $vip:80")
TARGETS=(N D V)

# Every target and size must answer 200 with the expected body before we measure.
declare -A BODY
for s in $SIZES; do
  for t in "${TARGETS[@]}"; do
    out=$(ip netns exec "$client_ns" curl -sS -m 3 -o /dev/null -w '%{http_code} %{size_download}' -H "Host: ${HOST[$s]}" "${URL[$t]}") ||
      die "$t ${URL[$t]} (Host ${HOST[$s]}) does not answer"
    [ "${out%% *}" = 200 ] || die "$t ${URL[$t]} (Host ${HOST[$s]}) answered $out"
    BODY[$s]=${out#* }
  done
done

# cputicks PID...: user+system clock ticks of the processes.
cputicks() { local p t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
HZ=$(getconf CLK_TCK)

# run_wrk TARGET SIZE DURATION: sets RPS, P99 (ms), ERRS, REQS, CPU (proxy CPU µs per request; "" for V).
run_wrk() {
  local t=$1 s=$2 dur=$3 pids="" c0=0 c1
  case $t in N) pids=$INGRESS_NGINX_PIDS ;; D) pids=$ingress_pid ;; esac
  [ -n "$pids" ] && c0=$(cputicks $pids)
  ip netns exec "$client_ns" wrk -t "$THREADS" -c "$CONNS" -d "$dur" --latency -H "Host: ${HOST[$s]}" "${URL[$t]}" >"$tmp/wrk.out" 2>&1 || {
    cat "$tmp/wrk.out" >&2
    die "wrk failed for $t ${URL[$t]}"
  }
  read -r RPS P99 ERRS REQS < <(awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^Requests\/sec:/ { rps = $2 }
    / requests in / { n = $1 }
    /^ +99%/ { p99 = ms($2) }
    /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { err += $5 }
    END { printf "%.1f %.3f %d %d\n", rps, p99, err, n }' "$tmp/wrk.out")
  CPU=""
  if [ -n "$pids" ]; then
    c1=$(cputicks $pids)
    CPU=$(awk -v d=$((c1 - c0)) -v hz="$HZ" -v n="$REQS" 'BEGIN{printf "%.1f", d / hz * 1e6 / n}')
  fi
}

for s in $SIZES; do for t in "${TARGETS[@]}"; do run_wrk "$t" "$s" 1s; done; done # warm-up

declare -A RPSS P99S CPUS RATIO ERRORS
for r in $(seq 1 "$ROUNDS"); do
  for s in $SIZES; do
    line="round $r/$ROUNDS $s:"
    for t in "${TARGETS[@]}"; do
      run_wrk "$t" "$s" "$DURATION"
      RPSS[$t$s]+="$RPS "; P99S[$t$s]+="$P99 "; CPUS[$t$s]+="$CPU "
      ERRORS[$t$s]=$((${ERRORS[$t$s]:-0} + ERRS))
      declare "rps_$t=$RPS"
      line+=" $t $RPS req/s p99 ${P99}ms${CPU:+ cpu ${CPU}µs/req};"
    done
    RATIO[D$s]+="$(awk -v a="$rps_N" -v b="$rps_D" 'BEGIN{printf "%.4f", b / a}') "
    RATIO[V$s]+="$(awk -v a="$rps_N" -v b="$rps_V" 'BEGIN{printf "%.4f", b / a}') "
    log "$line"
  done
done

stats() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{m = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; print m, a[1], a[NR]}'; }
fmt() { # "median min max" decimals unit
  local m lo hi
  read -r m lo hi <<<"$1"
  awk -v m="$m" -v lo="$lo" -v hi="$hi" -v d="$2" -v u="$3" 'BEGIN{f = "%." d "f"; printf f u " (" f "–" f ")", m, lo, hi}'
}

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain 2>/dev/null | head -n1)" ] || commit+=" (dirty tree)"
cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
echo "### L7 path — $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "kernel $(uname -r), $(nproc) CPUs (${cpu:-unknown}), $(iptables --version 2>/dev/null || echo 'iptables ?'), $("$NGINX" -v 2>&1 | sed 's/.*version: //'), $(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}'), $("${GO:-go}" version 2>/dev/null | awk '{print $3}'), netlab $commit"
echo
echo "wrk -t $THREADS -c $CONNS -d $DURATION --latency, keep-alive, $ROUNDS rounds alternating N D V; $REPLICAS echo pod(s). N = ${NAME[N]} (reference), D = ${NAME[D]}, V = ${NAME[V]}. All three proxy to the same Service ClusterIP (kube-proxy → pod). Median (min–max) over the rounds; ratios are per round."
echo
echo "| response | N nginx req/s | D netlab req/s | **D/N** | V netlab via VIP req/s | V/N |"
echo "|---|---|---|---|---|---|"
for s in $SIZES; do
  echo "| $s (${BODY[$s]} B) | $(fmt "$(stats "${RPSS[N$s]}")" 0 "") | $(fmt "$(stats "${RPSS[D$s]}")" 0 "") | **$(fmt "$(stats "${RATIO[D$s]}")" 3 ×)** | $(fmt "$(stats "${RPSS[V$s]}")" 0 "") | $(fmt "$(stats "${RATIO[V$s]}")" 3 ×) |"
done
echo
echo "| response | p99 N | p99 D | p99 V | proxy CPU per request N (nginx, all processes) | D (netlab ingress agent) | errors N/D/V |"
echo "|---|---|---|---|---|---|---|"
for s in $SIZES; do
  echo "| $s | $(fmt "$(stats "${P99S[N$s]}")" 2 " ms") | $(fmt "$(stats "${P99S[D$s]}")" 2 " ms") | $(fmt "$(stats "${P99S[V$s]}")" 2 " ms") | $(fmt "$(stats "${CPUS[N$s]}")" 1 " µs") | $(fmt "$(stats "${CPUS[D$s]}")" 1 " µs") | ${ERRORS[N$s]}/${ERRORS[D$s]}/${ERRORS[V$s]} |"
done
echo
echo "Targets: D ≥ 0.5× N (first), ≥ 1.0× N with p99 ≤ nginx's (moonshot). V crosses the LB too and spreads over both nodes' ingress agents, so V/N is not like for like."
