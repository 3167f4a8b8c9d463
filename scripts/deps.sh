#!/usr/bin/env bash
# Installs what the lab, its tests and benchmarks use, with apt, only when missing.
# Idempotent. Run as root. BENCH=1 also installs the benchmark tools (wrk, nginx, mininet).
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
if [ "${BENCH:-0}" = 1 ]; then
  have wrk || need+=(wrk)
  have nginx || need+=(nginx-light)
  have mn || need+=(mininet)
  # mn --switch lxbr drives the Linux bridge with brctl; the mininet package does not pull it in.
  have brctl || need+=(bridge-utils)
  have hyperfine || need+=(hyperfine)
  have jq || need+=(jq)
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing ${need[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! have go; then
  if [ -x /usr/local/go/bin/go ]; then
    echo "deps: Go is in /usr/local/go/bin; add it to PATH" >&2
  else
    echo "deps: Go is missing: install Go 1.26 or newer (https://go.dev/doc/install or apt install golang-go)" >&2
  fi
  exit 1
fi

# kube-proxy's rules need bridge netfilter in the node namespaces. netlab never loads
# kernel modules itself; say so if it is missing.
if [ ! -d /proc/sys/net/bridge ]; then
  echo "deps: br_netfilter is not loaded; run: sudo modprobe br_netfilter" >&2
fi
echo "deps: ok"
