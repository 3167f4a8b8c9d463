#!/usr/bin/env bash
# L7 path benchmark (docs/performance.md, "L7 path (bench-l7)").
#
# One lab: 2 nodes, one client, an echo Deployment (REPLICAS, default 1) behind ClusterIP
# Services and an Ingress (small.bench -> Service echo; big.bench -> Service big). In the
# SAME namespace as node-1's netlab ingress, nginx (Debian nginx-light) on NGINX_PORT and
# HAProxy (Debian haproxy) on HAPROXY_PORT are started as two more ingresses with the same
# routing: Host-based, keep-alive upstream pool to the very same Service ClusterIP:port,
# the same forwarding headers, a request ID, an access log. wrk (same settings) alternates
# over the targets, ROUNDS times, per response size and connection mode:
#   N  nginx:   client -> node-1:NGINX_PORT (nginx) -> ClusterIP (kube-proxy) -> pod
#   H  haproxy: client -> node-1:HAPROXY_PORT (haproxy) -> ClusterIP -> pod
#   D  netlab:  client -> node-1:80 (netlab ingress agent) -> ClusterIP -> pod; the lab's ingress as a
#               user gets it with spec.ingress.workers: WORKERS (default 1, the lab's own default:
#               one process; auto: one worker process per CPU, the count nginx's `worker_processes
#               auto` starts), CPU counted over the agent and all its workers
#   V  netlab:  client -> ingress VIP:80 (LB, rr over both nodes' ingress) -> ClusterIP -> pod
#   P  netlab:  a second ingress agent of node-1, D's command line but one process (no
#               --workers) on two Go processors (--procs 2), on port P_PORT (8093)
#   W  netlab:  two more such agents on one Go processor each (ports W_PORTS, 8094 8095),
#               each driven by its own wrk with half the threads and connections, at once:
#               what two worker processes behind SO_REUSEPORT would see (nginx's model);
#               req/s summed, p99 the larger of the two, CPU both agents' over both runs
#   B  netlab:  the ingress agent of another build (BASE_AGENT, a netlab-agent binary, e.g.
#               main's) with D's command line as ONE process on one Go processor, on port
#               B_PORT (8096), beside D in the same rounds (the D/B column). With WORKERS=1 (the default), D is
#               one process too and D/B compares two builds; with more workers (e.g.
#               auto) D/B is the lab's workers ÷ one process, the build's change included
#               (BASE_AGENT = this build: what the workers bring). BASE_WORKERS (default 1)
#               starts B with --workers BASE_WORKERS instead (e.g. auto: main's workers beside
#               this build's, the same count as D's): its CPU counts all its processes, and
#               with keep-alive its connections per process are counted as D's are
#   The lab's supervisor starts the ingress agents with a Go runtime setting in GODEBUG
#   (supervise.IngressGODEBUG: Go's system monitor kept out of its deep sleep); P and W
#   get D's GODEBUG as the lab gave it, and so does B unless BASE_GODEBUG says otherwise:
#   BASE_GODEBUG=none starts B without one (a build whose supervisor sets none, e.g. main
#   before 2026-12-01's ninth L7 pass), any other value is B's GODEBUG
# Sizes: "small" is the echo's JSON (~0.7 KiB). "64k" is a 65536-byte static body: the
# echo agent has no option for a large body, so for the Service "big" (targetPort 8090 of
# the echo pods) each pod namespace gets a REDIRECT 8090 -> 8091 and an nginx serving the
# file on 8091; every proxy under test proxies to that same upstream.
# Modes: "ka" keeps client connections alive; "close" sends Connection: close (a new client
# connection per request; the proxies keep their upstream connections either way).
# It also reads the proxies' CPU time (/proc/PID/stat) to report CPU µs per request, and, with
# keep-alive, how the kernel's SO_REUSEPORT hash spread wrk's connections over nginx's workers
# (N) and the lab ingress's worker processes (D): counted halfway through each round (the
# round's log line; the output lists the most on one process per round).
# Every proxy runs in a session of its own (setsid), as the lab's agents do (the supervisor
# starts each in its own session) and as daemons do: with the kernel's autogroup scheduling
# (kernel.sched_autogroup_enabled) a session is one scheduling group, and a proxy in the
# same group as wrk (this script's session) is scheduled quite differently from one in a
# group of its own — on a loaded machine an agent started here served up to 2× the requests
# of the same binary started by the lab (docs/performance.md, "L7 path, seventh pass").
# Markdown on stdout, progress on stderr. Traffic stays between lab namespaces. On exit it
# stops the nginx and haproxy processes it started (by PID) and removes its lab.
#
# Env: ROUNDS (5), DURATION (5s), CONNS (32), THREADS (2), REPLICAS (1), SIZES ("small 64k"),
# MODES ("ka close"), WORKERS (spec.ingress.workers of the lab: D; default 1, the lab's
# default; auto for a worker per CPU, as nginx's worker_processes here), TARGETS ("N H D"; add V for the VIP, P and W for the agent's worker
# models, B with BASE_AGENT for another build; BASE_GODEBUG: see above), NGINX_PORT (8081), P_PORT (8093), W_PORTS ("8094 8095"), B_PORT (8096),
# HAPROXY_PORT (8082), NETLAB (a netlab binary; default: built from this tree into a temp dir),
# LAB (the lab's name; default bl7x<pid>), HOLD (a file: once every proxy answers, print how to reach them and wait while the file
# exists instead of measuring, for profiling by hand; remove it to end and clean up).
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
REPLICAS=${REPLICAS:-1}
SIZES=${SIZES:-"small 64k"}
MODES=${MODES:-"ka close"}
read -r -a TARGETS <<<"${TARGETS:-N H D}"
WORKERS=${WORKERS:-1}
NGINX_PORT=${NGINX_PORT:-8081}
HAPROXY_PORT=${HAPROXY_PORT:-8082}
P_PORT=${P_PORT:-8093}
B_PORT=${B_PORT:-8096}
read -r -a W_PORTS <<<"${W_PORTS:-8094 8095}"
BIG_PORT=8091 # the static upstream inside the pod namespaces

log() { printf 'bench-l7: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (network namespaces)"
for t in wrk nginx haproxy jq curl; do command -v "$t" >/dev/null || die "$t is missing: BENCH=1 scripts/deps.sh"; done
NGINX=$(command -v nginx)
HAPROXY=$(command -v haproxy)

tmp=$(mktemp -d /tmp/netlab-bench-l7.XXXXXX)
chmod 0755 "$tmp"
lab=${LAB:-bl7x$$}
lab=${lab:0:24}
lab_up=0
nginx_pids=() # every nginx master and worker, and the haproxy, we started
agent_pids=() # the extra ingress agents we started (targets P and W)
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local p
  for p in "${nginx_pids[@]}" "${agent_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local alive=0
    for p in "${nginx_pids[@]}" "${agent_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.3
  done
  for p in "${nginx_pids[@]}"; do
    case "$(cat "/proc/$p/comm" 2>/dev/null)" in nginx | haproxy) kill -KILL "$p" 2>/dev/null || true ;; esac
  done
  for p in "${agent_pids[@]}"; do
    { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -q 'agent ingress' && kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
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
  ingress: {workers: $WORKERS}
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

# The netlab ingress agent of node-1: the process in node-1's namespace running `agent ingress`
# (ingress_pid), and its workers (`--worker N`): D's CPU is theirs together (ingress_pids).
ingress_pid="" ingress_pids=""
for p in $(ip netns pids "$node_ns"); do
  c=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || continue
  [[ "$c" == *"agent ingress"* ]] || continue
  ingress_pids+="$p "
  [[ "$c" == *" --worker "* ]] || ingress_pid=$p
done
[ -n "$ingress_pid" ] || die "no netlab ingress agent found in $node_ns"
want_workers=$WORKERS
[ "$want_workers" = auto ] && want_workers=$(nproc)
[ "$(wc -w <<<"$ingress_pids")" = "$want_workers" ] || die "node-1's ingress runs $(wc -w <<<"$ingress_pids") processes ($ingress_pids), want $want_workers"

# start_nginx NS CONF NAME: starts nginx in NS in the foreground of a background job, waits for
# all its workers (worker_processes auto: one per CPU; the CPU time per request counts them
# all), records master and workers in nginx_pids; sets NGINX_PIDS to them.
start_nginx() {
  local ns=$1 conf=$2 name=$3 master w want
  want=$(nproc)
  ip netns exec "$ns" setsid "$NGINX" -p "$tmp/$name" -e "$tmp/$name/error.log" -c "$conf" \
    -g "daemon off; pid $tmp/$name/nginx.pid;" >"$tmp/$name/stdout" 2>&1 &
  master=$!
  nginx_pids+=("$master")
  for _ in $(seq 1 50); do
    kill -0 "$master" 2>/dev/null || { cat "$tmp/$name/stdout" "$tmp/$name/error.log" >&2 2>/dev/null; die "nginx $name exited"; }
    w=$(pgrep -P "$master" | tr '\n' ' ' || true)
    [ "$(wc -w <<<"$w")" -ge "$want" ] && break
    sleep 0.1
  done
  [ "$(wc -w <<<"$w")" -ge "$want" ] || die "nginx $name started $(wc -w <<<"$w") of $want workers"
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
log "nginx ingress in $node_ns on :$NGINX_PORT (pids $INGRESS_NGINX_PIDS); netlab ingress agent and workers: pids $ingress_pids"

# HAProxy as the ingress of node-1, on HAPROXY_PORT, configured the same way: one process
# with a thread per CPU (its default), Host routing, a keep-alive upstream pool reused
# by every client connection (http-reuse always), the forwarding headers, a request ID,
# and an access log (to its stdout, a file).
d="$tmp/haproxy"
mkdir -p "$d"
cat >"$d/haproxy.cfg" <<EOF
global
  maxconn 8192
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 30s
  timeout http-keep-alive 60s
  http-reuse always
  log stdout format raw local0
frontend ingress
  bind :$HAPROXY_PORT
  log global
  log-format '{"time":"%tr","requestID":"%ID","client":"%ci","path":"%HP","status":%ST,"bytes":%B,"duration":%Ta,"upstream":"%si:%sp"}'
  unique-id-format %{+X}o%ci%cp%fi%fp%Ts%rt%pid
  http-request set-header X-Request-ID %[unique-id]
  http-request set-header X-Real-IP %[src]
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header X-Forwarded-Port %[dst_port]
  option forwardfor
  http-after-response set-header X-Request-ID %[unique-id]
  http-after-response set-header X-Netlab-Ingress-Node haproxy-node-1
  use_backend small if { hdr(host) -i small.bench }
  use_backend big if { hdr(host) -i big.bench }
  http-request return status 404 content-type text/plain string "no ingress rule matched this host and path" unless { hdr(host) -i small.bench } || { hdr(host) -i big.bench }
backend small
  server s1 ${UPSTREAM[small]} maxconn 1024
backend big
  server s1 ${UPSTREAM[64k]} maxconn 1024
EOF
"$HAPROXY" -c -f "$d/haproxy.cfg" >"$d/check.out" 2>&1 || { cat "$d/check.out" >&2; die "haproxy config check failed"; }
ip netns exec "$node_ns" setsid "$HAPROXY" -f "$d/haproxy.cfg" >"$d/access.log" 2>"$d/stderr" &
HAPROXY_PID=$!
nginx_pids+=("$HAPROXY_PID")
log "haproxy ingress in $node_ns on :$HAPROXY_PORT (pid $HAPROXY_PID)"

# The LB's wan filter lets clients reach the nodes' ingress ports (80, 443) and nothing
# else: open the reference proxies' two ports on node-1 too (a rule in the lab's own LB
# namespace, gone with the lab).
lb_ns=$(st '.loadBalancer.namespace')
ip netns exec "$lb_ns" iptables -n -L NETLAB-WAN-FILTER >/dev/null 2>&1 &&
  ip netns exec "$lb_ns" iptables -I NETLAB-WAN-FILTER 1 -d "$node_ip" -p tcp -m multiport --dports "$NGINX_PORT,$HAPROXY_PORT" \
  -m comment --comment "bench-l7: the reference proxies" -j RETURN
declare -A URL=([N]="http://$node_ip:$NGINX_PORT/" [H]="http://$node_ip:$HAPROXY_PORT/" [D]="http://$node_ip:80/" [V]="http://$vip:80/"
  [P]="http://$node_ip:$P_PORT/" [W]="http://$node_ip:${W_PORTS[0]}/" [B]="http://$node_ip:$B_PORT/")
declare -A NAME=([N]="nginx, node-1:$NGINX_PORT" [H]="haproxy, node-1:$HAPROXY_PORT" [D]="netlab ingress with spec.ingress.workers: $WORKERS ($want_workers processes), node-1:80" [V]="netlab via VIP $vip:80"
  [P]="netlab ingress on 2 Go processors, node-1:$P_PORT" [W]="two netlab ingress agents on 1 Go processor each, node-1:${W_PORTS[*]}, half the connections each"
  [B]="netlab ingress of the build ${BASE_AGENT:-}, $([ "${BASE_WORKERS:-1}" = 1 ] && echo "one process on 1 Go processor" || echo "--workers $BASE_WORKERS"), node-1:$B_PORT, GODEBUG ${BASE_GODEBUG-as D has it}")

# start_agent PORT PROCS [BINARY [WORKERS]]: another ingress agent of node-1 with D's command line
# (and binary, or BINARY) as one process (no --workers), on PORT (HTTP; HTTPS and metrics on PORT+100 and PORT+200) with
# PROCS Go processors, or with --workers WORKERS when that is not 1 (each worker on the Go
# processors the agent gives it); its pid in AGENT_PID, it and its workers in AGENT_PIDS. It
# serves the same routes (it reads the lab's plan) with its own upstream pool.
start_agent() {
  local port=$1 procs=$2 bin=${3:-} workers=${4:-1} a skip=0 args=() first=1 count
  while IFS= read -r -d '' a; do
    if [ "$first" = 1 ]; then # the agent's binary, by its path (argv[0] may be a bare name)
      first=0
      args+=("${bin:-$(readlink -f "/proc/$ingress_pid/exe")}")
      continue
    fi
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    case $a in
    --http-port | --https-port | --metrics-port | --procs | --workers | --worker) skip=1; continue ;;
    --http-port=* | --https-port=* | --metrics-port=* | --procs=* | --workers=* | --worker=*) continue ;;
    esac
    args+=("$a")
  done <"/proc/$ingress_pid/cmdline"
  local godebug=$D_GODEBUG
  if [ -n "$bin" ] && [ -n "${BASE_GODEBUG+x}" ]; then
    godebug=$BASE_GODEBUG
    [ "$godebug" = none ] && godebug=""
  fi
  local model=(--procs "$procs")
  [ "$workers" = 1 ] || model=(--workers "$workers")
  ip netns exec "$node_ns" setsid env -u GODEBUG ${godebug:+GODEBUG="$godebug"} "${args[@]}" --http-port "$port" --https-port $((port + 100)) --metrics-port $((port + 200)) \
    "${model[@]}" >"$tmp/agent$port.log" 2>&1 &
  AGENT_PID=$!
  AGENT_PIDS=$AGENT_PID
  agent_pids+=("$AGENT_PID")
  count=$workers
  [ "$count" = auto ] && count=$(nproc)
  for _ in $(seq 1 50); do
    if ip netns exec "$client_ns" curl -s -m 1 -o /dev/null "http://$node_ip:$port/"; then
      [ "$count" = 1 ] && return 0
      # the workers: children of the agent (`--worker I`), each counted and stopped with it
      local w
      w=$(pgrep -P "$AGENT_PID" -f -- '--worker [0-9]' | tr '\n' ' ' || true)
      if [ "$(wc -w <<<"$w")" = $((count - 1)) ]; then
        AGENT_PIDS+=" $w"
        for a in $w; do agent_pids+=("$a"); done
        return 0
      fi
    fi
    kill -0 "$AGENT_PID" 2>/dev/null || { cat "$tmp/agent$port.log" >&2; die "the ingress agent on :$port exited"; }
    sleep 0.1
  done
  die "the ingress agent on :$port does not answer"
}
# D's GODEBUG, as the lab's supervisor gave it (the extra agents get it too: see the header).
D_GODEBUG=$(tr '\0' '\n' <"/proc/$ingress_pid/environ" | sed -n 's/^GODEBUG=//p' | head -n1)
extra_ports=()
if [[ " ${TARGETS[*]} " == *" P "* ]]; then extra_ports+=("$P_PORT"); fi
if [[ " ${TARGETS[*]} " == *" W "* ]]; then extra_ports+=("${W_PORTS[@]}"); fi
if [[ " ${TARGETS[*]} " == *" B "* ]]; then
  [ -x "${BASE_AGENT:-}" ] || die "target B needs BASE_AGENT, a netlab-agent binary"
  extra_ports+=("$B_PORT")
fi
if [ "${#extra_ports[@]}" -gt 0 ]; then
  ip netns exec "$lb_ns" iptables -n -L NETLAB-WAN-FILTER >/dev/null 2>&1 &&
    ip netns exec "$lb_ns" iptables -I NETLAB-WAN-FILTER 1 -d "$node_ip" -p tcp -m multiport --dports "$(IFS=,; echo "${extra_ports[*]}")" \
    -m comment --comment "bench-l7: the extra ingress agents" -j RETURN
fi
P_PID="" W_PIDS="" B_PID=""
if [[ " ${TARGETS[*]} " == *" B "* ]]; then
  start_agent "$B_PORT" 1 "$BASE_AGENT" "${BASE_WORKERS:-1}"
  B_PID=$AGENT_PIDS
  log "base build's ingress agent: B pids $B_PID on :$B_PORT ($BASE_AGENT, workers ${BASE_WORKERS:-1})"
fi
if [[ " ${TARGETS[*]} " == *" P "* ]]; then start_agent "$P_PORT" 2; P_PID=$AGENT_PID; fi
if [[ " ${TARGETS[*]} " == *" W "* ]]; then
  for port in "${W_PORTS[@]}"; do start_agent "$port" 1; W_PIDS+="$AGENT_PID "; done
  log "extra ingress agents: P pid ${P_PID:-none} on :$P_PORT (2 processors), W pids ${W_PIDS:-none}on :${W_PORTS[*]} (1 processor each)"
elif [ -n "$P_PID" ]; then
  log "extra ingress agent: P pid $P_PID on :$P_PORT (2 processors)"
fi
declare -A MODENAME=([ka]="keep-alive" [close]="Connection: close")
for t in "${TARGETS[@]}"; do [ -n "${URL[$t]:-}" ] || die "unknown target $t (N H D V P W B)"; done
[[ " ${TARGETS[*]} " == *" N "* ]] || die "TARGETS must include N, the reference"
for _ in $(seq 1 50); do
  ip netns exec "$client_ns" curl -s -m 1 -o /dev/null "http://$node_ip:$HAPROXY_PORT/" && break
  kill -0 "$HAPROXY_PID" 2>/dev/null || { cat "$tmp/haproxy/stderr" >&2; die "haproxy exited"; }
  sleep 0.1
done

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

if [ -n "${HOLD:-}" ]; then
  touch "$HOLD"
  log "holding while $HOLD exists: client namespace $client_ns; node namespace $node_ns"
  for t in "${TARGETS[@]}"; do log "  $t ${URL[$t]} (${NAME[$t]})"; done
  log "  Hosts: ${HOST[small]} ${HOST[64k]}; pids: nginx $INGRESS_NGINX_PIDS, haproxy $HAPROXY_PID, netlab $ingress_pids"
  log "  e.g. ip netns exec $client_ns wrk -t $THREADS -c $CONNS -d 10s --latency -H 'Host: ${HOST[small]}' ${URL[D]}"
  while [ -e "$HOLD" ]; do sleep 1; done
  exit 0
fi

# cputicks PID...: user+system clock ticks of the processes.
cputicks() { local p t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
HZ=$(getconf CLK_TCK)

# conn_split URL PID...: the client connections established on URL's port in node-1's namespace,
# per process of PID..., most first ("18/14"; a process with none counts 0).
conn_split() {
  local port=${1##*:} p out=""
  port=${port%/}
  local owners
  owners=$(ip netns exec "$node_ns" ss -tnpH state established "( sport = :$port )" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2)
  for p in "${@:2}"; do out+="$(grep -cx "$p" <<<"$owners" || true) "; done
  tr ' ' '\n' <<<"$out" | grep -v '^$' | sort -rn | paste -sd/
}

# run_wrk TARGET SIZE MODE DURATION: sets RPS, P99 (ms), ERRS, REQS, CPU (proxy CPU µs per request; "" for V),
# SPLIT (keep-alive through several processes, N and D: the connections per process, most first).
run_wrk() {
  local t=$1 s=$2 m=$3 dur=$4 pids="" c0=0 c1 extra=()
  SPLIT=""
  case $t in N) pids=$INGRESS_NGINX_PIDS ;; H) pids=$HAPROXY_PID ;; D) pids=$ingress_pids ;; P) pids=$P_PID ;; W) pids=$W_PIDS ;; B) pids=$B_PID ;; esac
  [ "$m" = close ] && extra=(-H "Connection: close")
  [ -n "$pids" ] && c0=$(cputicks $pids)
  local outs=("$tmp/wrk.out") jobs=() i port
  if [ "$t" = W ]; then
    # one wrk per agent, half the threads and connections each, at once
    outs=()
    i=0
    for port in "${W_PORTS[@]}"; do
      ip netns exec "$client_ns" wrk -t $(((THREADS + 1) / 2)) -c $((CONNS / ${#W_PORTS[@]})) -d "$dur" --latency -H "Host: ${HOST[$s]}" "${extra[@]}" \
        "http://$node_ip:$port/" >"$tmp/wrk$i.out" 2>&1 &
      jobs+=($!)
      outs+=("$tmp/wrk$i.out")
      i=$((i + 1))
    done
    for i in "${!jobs[@]}"; do wait "${jobs[$i]}" || { cat "${outs[$i]}" >&2; die "wrk failed for $t"; }; done
  else
    ip netns exec "$client_ns" wrk -t "$THREADS" -c "$CONNS" -d "$dur" --latency -H "Host: ${HOST[$s]}" "${extra[@]}" "${URL[$t]}" >"$tmp/wrk.out" 2>&1 &
    i=$!
    # keep-alive through several processes (N, D or B with workers): how the kernel's reuseport hash
    # spread wrk's connections over them, counted halfway through the run
    local procs=$pids
    [ "$t" = N ] && procs=${INGRESS_NGINX_PIDS#* } # the workers (the master holds no connection)
    if [ "$m" = ka ] && [[ "$t" == [NDB] && "$dur" =~ ^[0-9.]+s$ ]] && [ "$(wc -w <<<"$procs")" -gt 1 ]; then
      sleep "$(awk -v d="${dur%s}" 'BEGIN{print d / 2}')"
      SPLIT=$(conn_split "${URL[$t]}" $procs)
    fi
    wait "$i" || {
      cat "$tmp/wrk.out" >&2
      die "wrk failed for $t ${URL[$t]}"
    }
  fi
  # req/s and requests summed over the wrk runs, p99 the larger, errors summed
  read -r RPS P99 ERRS REQS < <(awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^Requests\/sec:/ { rps += $2 }
    / requests in / { n += $1 }
    /^ +99%/ { if (ms($2) > p99) p99 = ms($2) }
    /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { err += $5 }
    END { printf "%.1f %.3f %d %d\n", rps, p99, err, n }' "${outs[@]}")
  CPU=""
  if [ -n "$pids" ]; then
    c1=$(cputicks $pids)
    CPU=$(awk -v d=$((c1 - c0)) -v hz="$HZ" -v n="$REQS" 'BEGIN{printf "%.1f", d / hz * 1e6 / n}')
  fi
}

for s in $SIZES; do for m in $MODES; do for t in "${TARGETS[@]}"; do run_wrk "$t" "$s" "$m" 1s; done; done; done # warm-up

declare -A RPSS P99S CPUS RATIO ERRORS SPLITS
for r in $(seq 1 "$ROUNDS"); do
  for s in $SIZES; do
    for m in $MODES; do
      line="round $r/$ROUNDS $s $m:"
      k=$s$m
      for t in "${TARGETS[@]}"; do
        run_wrk "$t" "$s" "$m" "$DURATION"
        RPSS[$t$k]+="$RPS "; P99S[$t$k]+="$P99 "; CPUS[$t$k]+="$CPU "
        ERRORS[$t$k]=$((${ERRORS[$t$k]:-0} + ERRS))
        declare "rps_$t=$RPS"
        line+=" $t $RPS req/s p99 ${P99}ms${CPU:+ cpu ${CPU}µs/req}${SPLIT:+ conns $SPLIT};"
        [ -n "${SPLIT:-}" ] && SPLITS[$t$k]+="${SPLIT%%/*} "
      done
      for t in "${TARGETS[@]}"; do
        [ "$t" = N ] && continue
        b="rps_$t"
        RATIO[$t$k]+="$(awk -v a="$rps_N" -v b="${!b}" 'BEGIN{printf "%.4f", b / a}') "
      done
      if [[ " ${TARGETS[*]} " == *" H "* && " ${TARGETS[*]} " == *" D "* ]]; then
        RATIO[DH$k]+="$(awk -v a="$rps_H" -v b="$rps_D" 'BEGIN{printf "%.4f", b / a}') "
      fi
      if [[ " ${TARGETS[*]} " == *" B "* && " ${TARGETS[*]} " == *" D "* ]]; then
        RATIO[DB$k]+="$(awk -v a="$rps_B" -v b="$rps_D" 'BEGIN{printf "%.4f", b / a}') "
      fi
      log "$line"
    done
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
has() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }
echo "### L7 path — $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "kernel $(uname -r), $(nproc) CPUs (${cpu:-unknown}), $(iptables --version 2>/dev/null || echo 'iptables ?'), $("$NGINX" -v 2>&1 | sed 's/.*version: //'), $("$HAPROXY" -v 2>&1 | head -n1 | awk '{print "haproxy/" $3}'), $(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}'), $("${GO:-go}" version 2>/dev/null | awk '{print $3}'), netlab $commit; load average at the end $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared with other work)"
echo
echo "wrk -t $THREADS -c $CONNS -d $DURATION --latency, $ROUNDS rounds alternating ${TARGETS[*]} per size and mode; $REPLICAS echo pod(s). $(for t in "${TARGETS[@]}"; do printf '%s = %s. ' "$t" "${NAME[$t]}"; done)All proxy to the same Service ClusterIP (kube-proxy → pod). Median (min–max) over the rounds; ratios are per round."
echo
hdr="| response | mode | N nginx req/s |"
sep="|---|---|---|"
for t in "${TARGETS[@]}"; do
  case $t in H) hdr+=" H haproxy req/s | H/N |"; sep+="---|---|" ;; D) hdr+=" D netlab req/s | **D/N** |"; sep+="---|---|" ;; V) hdr+=" V netlab via VIP req/s | V/N |"; sep+="---|---|" ;;
  P) hdr+=" P netlab 2 processors req/s | P/N |"; sep+="---|---|" ;; W) hdr+=" W netlab 2×1 processes req/s | W/N |"; sep+="---|---|" ;;
  B) hdr+=" B other build req/s | B/N |"; sep+="---|---|" ;; esac
done
if has H && has D; then hdr+=" **D/H** |"; sep+="---|"; fi
if has B && has D; then hdr+=" **D/B** |"; sep+="---|"; fi
echo "$hdr"
echo "$sep"
for s in $SIZES; do
  for m in $MODES; do
    k=$s$m
    row="| $s (${BODY[$s]} B) | ${MODENAME[$m]} | $(fmt "$(stats "${RPSS[N$k]}")" 0 "") |"
    for t in "${TARGETS[@]}"; do
      [ "$t" = N ] && continue
      b=""; [ "$t" = D ] && b="**"
      row+=" $(fmt "$(stats "${RPSS[$t$k]}")" 0 "") | $b$(fmt "$(stats "${RATIO[$t$k]}")" 3 ×)$b |"
    done
    if has H && has D; then row+=" **$(fmt "$(stats "${RATIO[DH$k]}")" 3 ×)** |"; fi
    if has B && has D; then row+=" **$(fmt "$(stats "${RATIO[DB$k]}")" 3 ×)** |"; fi
    echo "$row"
  done
done
echo
hdr="| response | mode |"
sep="|---|---|"
for t in "${TARGETS[@]}"; do hdr+=" p99 $t |"; sep+="---|"; done
for t in "${TARGETS[@]}"; do [ "$t" = V ] || { hdr+=" CPU/request $t |"; sep+="---|"; }; done
hdr+=" errors $(IFS=/; echo "${TARGETS[*]}") |"; sep+="---|"
echo "$hdr"
echo "$sep"
for s in $SIZES; do
  for m in $MODES; do
    k=$s$m
    row="| $s | ${MODENAME[$m]} |"
    for t in "${TARGETS[@]}"; do row+=" $(fmt "$(stats "${P99S[$t$k]}")" 2 " ms") |"; done
    for t in "${TARGETS[@]}"; do [ "$t" = V ] || row+=" $(fmt "$(stats "${CPUS[$t$k]}")" 1 " µs") |"; done
    e=""
    for t in "${TARGETS[@]}"; do e+="${e:+/}${ERRORS[$t$k]}"; done
    echo "$row $e |"
  done
done
for t in N D B; do
  has "$t" || continue
  for s in $SIZES; do
    [ -n "${SPLITS[${t}${s}ka]:-}" ] || continue
    echo
    echo "$t, $s keep-alive: connections on the process with the most of them, of $CONNS (reuseport hash; per round, halfway through): ${SPLITS[${t}${s}ka]% }"
  done
done
echo
echo "CPU/request: the proxy's own CPU time (user + system, all its processes) over the requests wrk completed. Targets: D ≥ 1.0× N with p99 ≤ nginx's (first), ≥ 1.3× N (moonshot). V crosses the LB too and spreads over both nodes' ingress agents, so V/N is not like for like."
