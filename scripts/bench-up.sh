#!/usr/bin/env bash
# Lab bring-up and teardown benchmark (docs/performance.md, "Lab bring-up and teardown").
#
# For 3 nodes x 10 pods and 3 nodes x 100 pods it alternates, A B A B, at least ROUNDS times:
#   A  `netlab up` (returns only when every pod answers), then `netlab down`, each timed;
#   B  Mininet `mn --switch lxbr --controller none --topo single,N --test none` with as many
#      hosts, its whole run timed and split into build (start .. net.stop()) and stop.
# It prints a markdown table on stdout (progress goes to stderr) and removes what it made,
# even on failure: its own labs, by name, and the Mininet links it left, by exact name.
#
# Mininet is run through a tiny wrapper that executes /usr/bin/mn unchanged except for two
# host-wide side effects this project must not have: mn's cleanup() on error or Ctrl-C
# (`mn -c`: pkill -9 -f by pattern, killall, deletes every *-ethN link, rm /tmp/*.log) and
# fixLimits()'s writes to the root namespace's sysctls (the per-process rlimits are kept).
# It runs in a network namespace of its own (`unshare --net`): its switch bridge and the
# switch ends of its links live there and vanish with it, never in the host's namespace.
#
# Env: ROUNDS (5), NODES (3), SIZES ("10 100" pods per node), MININET (1; 0: netlab only, for
# side-by-side runs of two netlab builds at sizes where Mininet takes minutes), MN_SLOW (120: a Mininet run
# slower than this many seconds cuts that size to MN_FEW_ROUNDS (3) rounds), UP_TIMEOUT
# (120s), NETLAB (path to the binary; default bin/netlab, rebuilt when a source is newer),
# STATUS_CALLS (0: after each up, call `netlab status -o json` this many times and report
# how many pods each call saw ready, and from where). `make bench-biglab` runs
# NODES=4 SIZES=250 STATUS_CALLS=3 (a 1000-pod lab beside Mininet single,1000).
#
# Memory: right after each up, the PSS (proportional set size, /proc/PID/smaps_rollup) of
# every process of the lab (every process whose argv says `--lab LAB`: agents and pods),
# summed per role; for Mininet, of mn and every process under it (its hosts' shells),
# taken when net.stop() begins, i.e. with the network built.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
SIZES=${SIZES:-"10 100"}
NODES=${NODES:-3}
STATUS_CALLS=${STATUS_CALLS:-0}
MN_SLOW=${MN_SLOW:-120}
MN_FEW_ROUNDS=${MN_FEW_ROUNDS:-3}
UP_TIMEOUT=${UP_TIMEOUT:-120s}
NETLAB=${NETLAB:-bin/netlab}
MN=/usr/bin/mn
PY=/usr/bin/python3 # mn's own interpreter (its shebang), not whatever python3 is first on PATH

log() { printf 'bench-up: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (network namespaces)"

# ---- netlab binary --------------------------------------------------------------------------
if [ "$NETLAB" = bin/netlab ]; then
  GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
  if [ ! -x bin/netlab ] || [ ! -x bin/netlab-pod ] || [ ! -x bin/netlab-agent ] || [ -n "$(find cmd netlab go.mod go.sum -newer bin/netlab \( -name '*.go' -o -name 'go.*' -o -name '*.yaml' \) -print -quit)" ]; then
    log "building bin/netlab"
    CGO_ENABLED=0 "$GO" build -o bin/ ./cmd/netlab ./cmd/netlab-pod ./cmd/netlab-agent # static, as make build links them
  fi
fi
[ -x "$NETLAB" ] || die "$NETLAB is not executable"
# netlab and the pods' and node agents' binaries beside it are linked statically by `make
# build` (CGO_ENABLED=0); a plain `go build` links them against the C library (package net's
# cgo resolver), and every process start then pays the dynamic loader: ~1 ms of CPU for a
# pod here, 3-4 ms for netlab itself (up and down each start it once).
linking=""
for b in netlab netlab-pod netlab-agent; do
  f="$(dirname "$NETLAB")/$b"
  if [ -x "$f" ] && LC_ALL=C file -b "$f" 2>/dev/null | grep -q 'dynamically linked'; then
    linking+="$b is dynamically linked (build it with CGO_ENABLED=0, as make build does); "
  fi
done
[ -z "$linking" ] || log "warning: $linking"

# ---- Mininet (the reference) ----------------------------------------------------------------
mn_ok=1
mn_why=""
if [ "${MININET:-1}" = 0 ]; then
  mn_ok=0; mn_why="MININET=0: netlab only"
elif ! deps_out=$(BENCH=1 scripts/deps.sh 2>&1); then
  log "scripts/deps.sh failed: $deps_out"
fi
if [ "$mn_ok" = 0 ]; then
  :
elif [ ! -x "$MN" ]; then
  mn_ok=0; mn_why="mininet is not installed ($MN missing; BENCH=1 scripts/deps.sh: $(tail -n1 <<<"$deps_out"))"
elif ! command -v brctl >/dev/null; then
  mn_ok=0; mn_why="brctl (bridge-utils) is missing; mn --switch lxbr needs it"
fi

# Mininet's only root-namespace objects with --switch lxbr are the bridge s1 and its ports
# s1-ethN. If any exist before we start they are someone else's: then skip Mininet.
mn_links() { ip -o link show 2>/dev/null | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep -E '^s1(-eth[0-9]+)?$' || true; }
if [ "$mn_ok" = 1 ] && [ -n "$(mn_links)" ]; then
  mn_ok=0; mn_why="the root namespace already has $(mn_links | head -n3 | tr '\n' ' ')- not ours, Mininet skipped"
fi

# ---- scratch, labs and cleanup --------------------------------------------------------------
tmp=$(mktemp -d /tmp/netlab-bench-up.XXXXXX)
labs=()
mn_pid=""
mn_ran=0 # set once we start mn: only then are s1/s1-ethN ours to remove
mn_leftovers=0
cleanup_mn_links() {
  local l left
  left=$(mn_links)
  [ -n "$left" ] || return 0
  log "removing leftover Mininet links by name: $(tr '\n' ' ' <<<"$left")"
  for l in $left; do
    ip link del dev "$l" 2>/dev/null || true
    mn_leftovers=$((mn_leftovers + 1))
  done
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$mn_pid" ] && kill -0 "$mn_pid" 2>/dev/null; then
    kill -TERM "$mn_pid" 2>/dev/null || true
    wait "$mn_pid" 2>/dev/null || true
  fi
  if [ "$mn_ran" = 1 ]; then cleanup_mn_links; fi
  local l
  for l in "${labs[@]}"; do
    "$NETLAB" down --name "$l" --purge >/dev/null 2>&1 || log "netlab down --name $l failed"
  done
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# The wrapper: /usr/bin/mn as it is, minus cleanup() and the root sysctl writes; it also
# writes the moment net.stop() begins, to split build from stop.
cat >"$tmp/mn.py" <<'EOF'
import os, resource, runpy, sys, time
import mininet.util
def _limits():
    mininet.util.rlimitTestAndSet(resource.RLIMIT_NPROC, 8192)
    mininet.util.rlimitTestAndSet(resource.RLIMIT_NOFILE, 16384)
mininet.util.fixLimits = _limits
import mininet.clean
def _noclean(*_a, **_k):
    sys.stderr.write("bench-up: mininet cleanup() suppressed (it pkills by pattern)\n")
mininet.clean.cleanup = _noclean
mininet.clean.Cleanup.cleanup = classmethod(lambda cls: _noclean())
import mininet.net
assert mininet.net.fixLimits is _limits
_stop = mininet.net.Mininet.stop
def stop(self):
    t = time.time()
    with open(os.environ["BENCH_PSS_FILE"], "w") as f:
        f.write("%d\n" % tree_pss(os.getpid()))
    with open(os.environ["BENCH_STOP_FILE"], "w") as f:
        f.write("%.6f\n" % t)
    return _stop(self)
def tree_pss(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, []))
        try:
            for l in open("/proc/%d/smaps_rollup" % pid):
                if l.startswith("Pss:"):
                    total += int(l.split()[1])
        except OSError:
            pass
    return total
mininet.net.Mininet.stop = stop
sys.argv = ["mn"] + sys.argv[1:]
runpy.run_path("/usr/bin/mn", run_name="__main__")
EOF

# pss.py LAB: the PSS (KiB) of every process whose argv says --lab LAB, per role
# ("agent <role>" in argv, else the program's name) and in total: "total=N role=N ...".
cat >"$tmp/pss.py" <<'EOF'
import collections, os, sys
lab, per = sys.argv[1], collections.Counter()
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        argv = [a.decode() for a in open("/proc/%s/cmdline" % d, "rb").read().split(b"\0")]
        if not any(argv[i] == "--lab" and argv[i + 1] == lab for i in range(len(argv) - 1)):
            continue
        role = argv[2] if len(argv) > 2 and argv[1] == "agent" else os.path.basename(argv[0])
        for l in open("/proc/%s/smaps_rollup" % d):
            if l.startswith("Pss:"):
                per[role] += int(l.split()[1])
    except (OSError, IndexError):
        continue
print("total=%d %s" % (sum(per.values()), " ".join("%s=%d" % kv for kv in sorted(per.items()))))
EOF

scenario() { # pods-per-node file
  cat >"$2" <<EOF
apiVersion: netlab.dev/v1alpha1
kind: Lab
metadata: {name: bench}
spec: {nodes: $NODES}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: w}
spec:
  replicas: $((NODES * $1))
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: w}}
    spec: {containers: [{name: w, ports: [{containerPort: 8080}]}]}
EOF
}

now() { echo "$EPOCHREALTIME"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.4f", b - a}'; }

# run_netlab LAB FILE: sets UP and DOWN (seconds), FABRIC and AGENTS (ms, from up -v's
# "step done" lines: namespaces/links/routes, then starting agents until all are ready). Runs in the main shell (no $(...)), so
# the trap sees what it started.
run_netlab() {
  local t0 t1 t2
  t0=$(now)
  if ! "$NETLAB" up -v -f "$2" --name "$1" --timeout "$UP_TIMEOUT" >"$tmp/up.out" 2>&1; then
    cat "$tmp/up.out" >&2
    die "netlab up -f $2 --name $1 failed"
  fi
  t1=$(now)
  PSS_LINE=$("$PY" "$tmp/pss.py" "$1")
  STATUS_SEEN=""
  local i
  for ((i = 0; i < STATUS_CALLS; i++)); do
    "$NETLAB" status --name "$1" -o json >"$tmp/status.json" 2>"$tmp/status.err" || die "netlab status --name $1 failed: $(cat "$tmp/status.err")"
    STATUS_SEEN+="$("$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
r = d.get("readiness") or {}
print("%d/%d(%s)" % (sum(p["ready"] for p in d["pods"]), len(d["pods"]), r.get("source", "probe")))' "$tmp/status.json") "
  done
  t1b=$(now)
  if ! "$NETLAB" down -v --name "$1" --purge >"$tmp/down.out" 2>&1; then
    cat "$tmp/down.out" >&2
    die "netlab down --name $1 failed"
  fi
  t2=$(now)
  if ip netns list | grep -q "^nl-$1-"; then die "netlab down --name $1 left namespaces"; fi
  UP=$(sub "$t0" "$t1"); DOWN=$(sub "$t1b" "$t2")
  AGENTS=$(grep -Eo 'step=agents ms=[0-9]+' "$tmp/up.out" | sed 's/.*ms=//' || true)
  # The agents step starts the pods first: how long until every pod reported ready.
  PODS=$(grep -Eo 'msg="pods ready" pods=[0-9]+ ms=[0-9]+' "$tmp/up.out" | sed 's/.*ms=//' || true)
  FABRIC=$({ grep -Eo 'step=("[^"]*"|[a-z]+) ms=[0-9]+' "$tmp/up.out" || true; } | { grep -v 'step=agents' || true; } |
    awk -F'ms=' '{t += $2} END{print t + 0}')
  # Every step's time, and down's, one "name ms" line each, for the per-step table.
  { grep -Eo 'step=("[^"]*"|[a-z]+) ms=[0-9]+' "$tmp/up.out" || true; } | sed -E 's/^step="?([^"]*)"? ms=/\1\t/' >"$tmp/steps.last"
  [ -z "$PODS" ] || printf 'agents: of which the pods\t%s\n' "$PODS" >>"$tmp/steps.last"
  { grep -Eo 'msg="lab down" .*ms=[0-9]+' "$tmp/down.out" || true; } | sed -E 's/.*ms=/down\t/' >>"$tmp/steps.last"
}

# run_mn HOSTS: sets MT MB MS (whole run, build, stop; seconds), or returns 1 with mn's
# output in $tmp/mn.out.
run_mn() {
  local t0 t1 ts rc=0
  rm -f "$tmp/mn.stop" "$tmp/mn.pss"
  mn_ran=1
  t0=$(now)
  BENCH_STOP_FILE="$tmp/mn.stop" BENCH_PSS_FILE="$tmp/mn.pss" unshare --net "$PY" "$tmp/mn.py" --switch lxbr --controller none \
    --topo "single,$1" --test none >"$tmp/mn.out" 2>&1 &
  mn_pid=$!
  wait "$mn_pid" || rc=$?
  t1=$(now)
  mn_pid=""
  cleanup_mn_links
  if [ "$rc" != 0 ] || [ ! -s "$tmp/mn.stop" ] || grep -q 'Caught exception' "$tmp/mn.out"; then
    return 1
  fi
  ts=$(cat "$tmp/mn.stop")
  MT=$(sub "$t0" "$t1"); MB=$(sub "$t0" "$ts"); MS=$(sub "$ts" "$t1")
  MPSS=$(cat "$tmp/mn.pss" 2>/dev/null || echo 0)
}

# stats < numbers -> "median min max"
stats() { sort -g | awk '{a[NR]=$1} END{m = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.3f %.3f %.3f\n", m, a[1], a[NR]}'; }
fmt() { awk -v m="$1" -v lo="$2" -v hi="$3" -v u="$4" 'BEGIN{printf "%.3f%s (%.3f–%.3f)", m, u, lo, hi}'; }

declare -A R_UP R_DOWN R_FAB R_AG R_MN R_MNB R_MNS NROUNDS R_PSS R_MPSS PSS_LAST STATUS_ALL
notes=()

for ppn in $SIZES; do
  pods=$((NODES * ppn))
  lab="bu$$n${pods}"
  lab=${lab:0:24}
  file="$tmp/lab-${NODES}x${ppn}.yaml"
  scenario "$ppn" "$file"
  labs+=("$lab")
  rounds=$ROUNDS
  r=1
  while [ "$r" -le "$rounds" ]; do
    run_netlab "$lab" "$file"
    up=$UP; down=$DOWN
    R_UP[$pods]+="$up "; R_DOWN[$pods]+="$down "
    R_FAB[$pods]+="$FABRIC "; R_AG[$pods]+="${AGENTS:-0} "
    cat "$tmp/steps.last" >>"$tmp/steps-$pods"
    pss_kib=$(sed 's/^total=\([0-9]*\).*/\1/' <<<"$PSS_LINE")
    R_PSS[$pods]+="$pss_kib "; PSS_LAST[$pods]=$PSS_LINE
    STATUS_ALL[$pods]+="$STATUS_SEEN"
    line="${NODES}x${ppn} round $r/$rounds: netlab up ${up}s (fabric ${FABRIC} ms, agents ${AGENTS:-?} ms) down ${down}s, PSS $PSS_LINE KiB${STATUS_SEEN:+, status saw ready: $STATUS_SEEN}"
    if [ "$mn_ok" = 1 ]; then
      if run_mn "$pods"; then
        mt=$MT; mb=$MB; ms=$MS
        R_MN[$pods]+="$mt "; R_MNB[$pods]+="$mb "; R_MNS[$pods]+="$ms "; R_MPSS[$pods]+="$MPSS "
        line+="; mininet ${mt}s (build ${mb}s, stop ${ms}s, PSS ${MPSS} KiB)"
        if [ "$r" = 1 ] && [ "$rounds" -gt "$MN_FEW_ROUNDS" ] && awk -v t="$mt" -v s="$MN_SLOW" 'BEGIN{exit !(t > s)}'; then
          rounds=$MN_FEW_ROUNDS
          notes+=("Mininet took ${mt}s for $pods hosts (> ${MN_SLOW}s): $pods pods ran $rounds rounds, not $ROUNDS.")
        fi
      else
        mn_ok=0
        mn_why="mn failed at $pods hosts: $(grep -v '^\*\*\*' "$tmp/mn.out" | grep -E -i 'error|exception|not found|cannot|denied' | head -n3 | tr '\n' ' ')"
        [ -n "$mn_why" ] || mn_why="mn failed at $pods hosts: $(tail -n3 "$tmp/mn.out" | tr '\n' ' ')"
        log "$mn_why"
      fi
    fi
    log "$line"
    r=$((r + 1))
  done
  NROUNDS[$pods]=$rounds
done

# ---- report ---------------------------------------------------------------------------------
ratio_list() { # numerators denominators -> per-round ratios
  local -a n=($1) d=($2)
  local i
  for i in "${!n[@]}"; do [ -n "${d[$i]:-}" ] && awk -v a="${n[$i]}" -v b="${d[$i]}" 'BEGIN{printf "%.4f\n", a / b}'; done
}
ser() { tr ' ' '\n' <<<"$1" | grep -v '^$'; }

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain 2>/dev/null | head -n1)" ] || commit+=" (dirty tree)"
cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
echo "### Lab bring-up and teardown — $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "kernel $(uname -r), $(nproc) CPUs (${cpu:-unknown}), $(iptables --version 2>/dev/null || echo 'iptables ?'), netlab $commit, mininet $(dpkg-query -W -f='${Version}' mininet 2>/dev/null || echo none)"
echo
[ -z "$linking" ] || { echo "**Warning:** $linking"; echo; }
echo "Median (min–max) over the rounds; A = netlab, B = Mininet, alternated A B A B in one run."
echo
if [ "$mn_ok" = 1 ]; then
  echo "| pods | rounds | netlab up | netlab down | up per pod | mininet build | mininet stop | mininet whole run | mn build / netlab up | mn stop / netlab down | mn run / (up+down) |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
else
  echo "| pods | rounds | netlab up | netlab down | up per pod |"
  echo "|---|---|---|---|---|"
fi
declare -A PERPOD
for ppn in $SIZES; do
  pods=$((NODES * ppn))
  read -r um ul uh < <(ser "${R_UP[$pods]}" | stats)
  read -r dm dl dh < <(ser "${R_DOWN[$pods]}" | stats)
  pp=$(awk -v u="$um" -v p="$pods" 'BEGIN{printf "%.2f", 1000 * u / p}')
  PERPOD[$pods]=$pp
  row="| ${NODES}×${ppn} = $pods | ${NROUNDS[$pods]} | $(fmt "$um" "$ul" "$uh" s) | $(fmt "$dm" "$dl" "$dh" s) | ${pp} ms"
  if [ "$mn_ok" = 1 ]; then
    read -r bm bl bh < <(ser "${R_MNB[$pods]}" | stats)
    read -r sm sl sh < <(ser "${R_MNS[$pods]}" | stats)
    read -r tm tl th < <(ser "${R_MN[$pods]}" | stats)
    read -r q1 q1l q1h < <(ratio_list "${R_MNB[$pods]}" "${R_UP[$pods]}" | stats)
    read -r q2 q2l q2h < <(ratio_list "${R_MNS[$pods]}" "${R_DOWN[$pods]}" | stats)
    both=$(paste -d' ' <(ser "${R_UP[$pods]}") <(ser "${R_DOWN[$pods]}") | awk '{printf "%.4f ", $1 + $2}')
    read -r q3 q3l q3h < <(ratio_list "${R_MN[$pods]}" "$both" | stats)
    row+=" | $(fmt "$bm" "$bl" "$bh" s) | $(fmt "$sm" "$sl" "$sh" s) | $(fmt "$tm" "$tl" "$th" s) | $(fmt "$q1" "$q1l" "$q1h" ×) | $(fmt "$q2" "$q2l" "$q2h" ×) | $(fmt "$q3" "$q3l" "$q3h" ×)"
  fi
  echo "$row |"
done
echo
echo "Where netlab up's time goes (median ms, from \`netlab up -v\`): fabric = namespaces, links, routes; agents = starting every agent until each reports ready."
echo
echo "| pods | fabric | agents |"
echo "|---|---|---|"
declare -A UPMED
for ppn in $SIZES; do
  pods=$((NODES * ppn))
  read -r fm _ _ < <(ser "${R_FAB[$pods]}" | stats)
  read -r am _ _ < <(ser "${R_AG[$pods]}" | stats)
  read -r UPMED[$pods] _ _ < <(ser "${R_UP[$pods]}" | stats)
  printf '| %s | %.0f ms | %.0f ms |\n' "$pods" "$fm" "$am"
done
echo
echo "Every step (median (min–max) ms over the rounds; \`up -v\` \"step done\" lines, the pods' wave that opens the agents step, and down's total):"
for ppn in $SIZES; do
  pods=$((NODES * ppn))
  [ -s "$tmp/steps-$pods" ] || continue
  echo
  echo "| $pods pods | ms |"
  echo "|---|---|"
  while IFS= read -r name; do
    read -r m lo hi < <(awk -F'\t' -v n="$name" '$1 == n {print $2}' "$tmp/steps-$pods" | stats)
    printf '| %s | %.0f (%.0f–%.0f) |\n' "$name" "$m" "$lo" "$hi"
  done < <(cut -f1 "$tmp/steps-$pods" | awk '!seen[$0]++')
done
echo
echo "Memory right after up (PSS, MiB; median (min–max) over the rounds): netlab = every process whose argv says \`--lab LAB\`; Mininet = mn and every process under it, when net.stop() begins. Per role: the last round."
echo
echo "| pods | netlab PSS | per pod | Mininet PSS | netlab per role (last round) |"
echo "|---|---|---|---|---|"
for ppn in $SIZES; do
  pods=$((NODES * ppn))
  read -r pm pl ph < <(ser "${R_PSS[$pods]}" | awk '{printf "%.1f\n", $1 / 1024}' | stats)
  mrow="—"
  if [ -n "${R_MPSS[$pods]:-}" ]; then
    read -r mm ml mh < <(ser "${R_MPSS[$pods]}" | awk '{printf "%.1f\n", $1 / 1024}' | stats)
    mrow=$(fmt "$mm" "$ml" "$mh" " MiB")
  fi
  roles=$(tr ' ' '\n' <<<"${PSS_LAST[$pods]}" | grep -v '^total=' | awk -F= '{printf "%s %.1f, ", $1, $2 / 1024}' | sed 's/, $//')
  echo "| $pods | $(fmt "$pm" "$pl" "$ph" " MiB") | $(awk -v m="$pm" -v p="$pods" 'BEGIN{printf "%.2f MiB", m / p}') | $mrow | $roles |"
done
if [ "$STATUS_CALLS" -gt 0 ]; then
  echo
  echo "\`netlab status\` right after up, $STATUS_CALLS calls per round: ready pods/all pods (where readiness came from), every call of every round:"
  echo
  for ppn in $SIZES; do
    pods=$((NODES * ppn))
    echo "- $pods pods: ${STATUS_ALL[$pods]}"
  done
fi
echo
set -- $SIZES
if [ $# -ge 2 ]; then
  a=$((NODES * $1)); b=$((NODES * ${!#}))
  echo "Per-pod up cost (median up / pods): ${PERPOD[$a]} ms at $a pods, ${PERPOD[$b]} ms at $b pods ($(awk -v x="${PERPOD[$a]}" -v y="${PERPOD[$b]}" 'BEGIN{printf "%.2f", y / x}')× the cost at $a); marginal cost of a pod between $a and $b: $(awk -v x="${UPMED[$a]}" -v y="${UPMED[$b]}" -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", 1000 * (y - x) / (b - a)}') ms."
fi
# Targets (docs/performance.md): 30 pods up < 1 s and >= 5x faster than Mininet's build;
# 300 pods up < 5 s; teardown < 0.5 s.
verdict() { awk -v x="$1" -v op="$2" -v y="$3" 'BEGIN{ok = op == "<" ? x < y : x >= y; printf "%s", ok ? "met" : "NOT met"}'; }
for pods in $(printf "%s\n" "${!UPMED[@]}" | sort -n); do
  read -r dm _ _ < <(ser "${R_DOWN[$pods]}" | stats)
  t="Targets at $pods pods:"
  case $pods in
  30) t+=" up ${UPMED[$pods]}s < 1 s $(verdict "${UPMED[$pods]}" "<" 1);"
    if [ "$mn_ok" = 1 ]; then
      read -r q _ _ < <(ratio_list "${R_MNB[$pods]}" "${R_UP[$pods]}" | stats)
      t+=" Mininet build / up ${q}× >= 5× $(verdict "$q" ">=" 5);"
      both=$(paste -d' ' <(ser "${R_UP[$pods]}") <(ser "${R_DOWN[$pods]}") | awk '{printf "%.4f ", $1 + $2}')
      read -r q _ _ < <(ratio_list "$both" "${R_MN[$pods]}" | stats)
      t+=" (up+down) / Mininet whole run ${q}× <= 0.2× $(verdict 0.2 ">=" "$q");"
    fi ;;
  300) t+=" up ${UPMED[$pods]}s < 5 s $(verdict "${UPMED[$pods]}" "<" 5);" ;;
  1000)
    read -r pm _ _ < <(ser "${R_PSS[$pods]}" | awk '{printf "%.1f\n", $1 / 1024}' | stats)
    t+=" up ${UPMED[$pods]}s < 8 s $(verdict "${UPMED[$pods]}" "<" 8); PSS ${pm} MiB < 3072 MiB $(verdict "$pm" "<" 3072);" ;;
  esac
  echo "$t down ${dm}s < 0.5 s $(verdict "$dm" "<" 0.5)."
done
[ "$mn_ok" = 1 ] || echo "Mininet not measured: $mn_why"
[ "$mn_leftovers" = 0 ] || echo "Mininet left $mn_leftovers root-namespace link(s) behind; removed by exact name."
for n in "${notes[@]}"; do echo "$n"; done
