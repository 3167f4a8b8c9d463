#!/usr/bin/env bash
# Installs what the lab, its tests and benchmarks use, with apt, only when missing.
# Idempotent. Run as root. BENCH=1 also installs the benchmark tools (wrk, nginx, haproxy,
# mininet, dnsperf, dnsmasq); TEST=1 the tests' own (vagrant, when apt has it); PROVISION=1 (what
# scripts/provision.sh asks) git and, when there is no Go, the distribution's golang-go.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need+=(iproute2)
have iptables-restore || need+=(iptables)
# kube-proxy's nftables mode (Lab.spec.kubeProxy.mode: nftables) applies its table with nft -f.
have nft || need+=(nftables)
have tcpdump || need+=(tcpdump)
have conntrack || need+=(conntrack)
have curl || need+=(curl)
have make || need+=(make)
# Wanted but not required: installed when this system's apt has them, else skipped with a
# line saying so (the tests that need them skip too).
optional=()
# The tests' own tools: `vagrant validate` checks the Vagrantfile (make test sets TEST=1).
if [ "${TEST:-0}" = 1 ]; then
  have vagrant || optional+=(vagrant)
fi
# scripts/provision.sh (PROVISION=1): git for the checkout, and Go from apt when there is
# none and apt's can build netlab (1.21 or later fetches the 1.26 go.mod asks for: Debian 13,
# Ubuntu 24.04 and later).
go_from_apt=0
if [ "${PROVISION:-0}" = 1 ]; then
  have git || need+=(git)
  if ! have go && [ ! -x /usr/local/go/bin/go ]; then
    go_from_apt=1
  fi
fi
if [ "${BENCH:-0}" = 1 ]; then
  have wrk || need+=(wrk)
  have nginx || need+=(nginx-light)
  # The L7 benchmark's second reference ingress (started by the script, never as a service).
  have haproxy || need+=(haproxy)
  have mn || need+=(mininet)
  # mn --switch lxbr drives the Linux bridge with brctl; the mininet package does not pull it in.
  have brctl || need+=(bridge-utils)
  have hyperfine || need+=(hyperfine)
  have jq || need+=(jq)
  # The cluster DNS benchmark: dnsperf as the load, dnsmasq (the binary only, no service)
  # as the reference server, dig to look.
  have dnsperf || need+=(dnsperf)
  [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
  have dig || need+=(bind9-dnsutils)
fi

if [ ${#need[@]} -gt 0 ] || [ ${#optional[@]} -gt 0 ] || [ $go_from_apt = 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing ${need[*]} ${optional[*]}; run as root to install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # apt's Go only when it is 1.21 or later (the version is [epoch:]1.MINOR~...).
  if [ $go_from_apt = 1 ]; then
    apt_go=$(apt-cache policy golang-go 2>/dev/null | sed -nE 's/^ *Candidate: ([0-9]+:)?1\.([0-9]+).*/\2/p')
    if [ -n "$apt_go" ] && [ "$apt_go" -ge 21 ]; then
      need+=(golang-go)
    else
      echo "deps: apt's golang-go ($(apt-cache policy golang-go 2>/dev/null | sed -nE 's/^ *Candidate: //p')) cannot build netlab" >&2
    fi
  fi
  if [ ${#need[@]} -gt 0 ]; then
    echo "deps: installing ${need[*]}"
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  for pkg in "${optional[@]}"; do
    if apt-cache policy "$pkg" 2>/dev/null | grep -qE '^ *Candidate: [0-9]'; then
      echo "deps: installing $pkg"
      apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
    else
      echo "deps: $pkg is not installable on this system (apt has no candidate): the tests that need it skip" >&2
    fi
  done
fi

# Go: go.mod asks for 1.26. A Go from 1.21 on fetches it through the module proxy with
# GOTOOLCHAIN=auto (the Makefile sets it); older ones (Debian 12, Ubuntu 22.04) cannot.
go_help="install Go 1.26: on Debian 13 / Ubuntu 24.04 or later \`apt install golang-go\` (make fetches 1.26 by itself);
  elsewhere the official tarball: curl -fsSLO https://go.dev/dl/go1.26.8.linux-amd64.tar.gz &&
  rm -rf /usr/local/go && tar -C /usr/local -xzf go1.26.8.linux-amd64.tar.gz   (see README.md, Go)"
if ! have go && [ -x /usr/local/go/bin/go ]; then
  PATH="/usr/local/go/bin:$PATH" # where the tarball puts it; the Makefile looks there too
fi
if ! have go; then
  echo "deps: Go is missing: $go_help" >&2
  exit 1
fi
go_minor=$(cd / && GOTOOLCHAIN=local go version | sed -nE 's/^go version go1\.([0-9]+).*/\1/p')
if [ -z "$go_minor" ] || [ "$go_minor" -lt 21 ]; then
  echo "deps: $(cd / && go version) cannot build netlab (it needs 1.26, and Go before 1.21 cannot fetch it): $go_help" >&2
  exit 1
fi

# kube-proxy's rules need bridge netfilter in the node namespaces. netlab never loads
# kernel modules itself; say so if it is missing.
if [ ! -d /proc/sys/net/bridge ]; then
  echo "deps: br_netfilter is not loaded; run: sudo modprobe br_netfilter" >&2
fi
echo "deps: ok"
