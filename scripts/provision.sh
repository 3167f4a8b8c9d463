#!/usr/bin/env bash
# Makes a Debian or Ubuntu machine ready for netlab: what the lab needs (scripts/deps.sh,
# with git and, when there is no Go, the distribution's golang-go), then builds netlab from
# this checkout and installs it in $PREFIX/bin (make install; PREFIX defaults to /usr/local).
# The Vagrantfile runs it in every VM; it runs the same on a plain machine. Run as root.
#
# Idempotent: a second run installs no package, rebuilds only what changed and installs the
# same binary again. It never touches the machine's network: no link,
# address, route, sysctl, firewall rule or kernel module. Only with --vm (what the
# Vagrantfile passes; do not pass it on a machine you share) it also prepares a VM that
# exists for the lab: loads br_netfilter, now and at every boot (kube-proxy's rules need
# bridge netfilter), and sets GOTOOLCHAIN=auto for root's own go commands.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: sudo [PREFIX=/usr/local] scripts/provision.sh [--vm]" >&2
  exit 2
}
vm=0
for arg in "$@"; do
  case $arg in
  --vm) vm=1 ;;
  -h | --help) usage ;;
  *)
    echo "provision: unknown argument $arg" >&2
    usage
    ;;
  esac
done
if [ "$(id -u)" != 0 ]; then
  echo "provision: run as root: sudo scripts/provision.sh" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "provision: needs a Debian or Ubuntu machine (apt-get); elsewhere install what scripts/deps.sh lists and run make build" >&2
  exit 1
fi
prefix=${PREFIX:-/usr/local}

PROVISION=1 scripts/deps.sh

# deps.sh found a Go that can build netlab; the tarball's is not on root's PATH by default.
if ! command -v go >/dev/null 2>&1; then
  export PATH="/usr/local/go/bin:$PATH"
fi
# make install builds first; go rebuilds only what changed.
mkdir -p "$prefix/bin"
make install PREFIX="$prefix"

if [ $vm = 1 ]; then
  # Debian's golang-go defaults to GOTOOLCHAIN=local; the Makefile sets auto, this keeps it
  # for root's own go commands in the VM.
  if [ "$(go env GOTOOLCHAIN)" != auto ]; then
    go env -w GOTOOLCHAIN=auto
  fi
  modprobe br_netfilter
  conf=/etc/modules-load.d/netlab.conf
  if [ "$(cat "$conf" 2>/dev/null)" != br_netfilter ]; then
    echo br_netfilter >"$conf"
  fi
  echo "provision: VM ready (br_netfilter loaded, and at boot)"
fi
echo "provision: ok ($("$prefix/bin/netlab" version 2>/dev/null | head -1))"
