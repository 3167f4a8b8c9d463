# netlab — see README.md. Every target that touches the kernel needs root (sudo make ...).
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN     := bin/netlab
# The pod agent: a small binary (standard library only) that netlab finds beside itself.
PODBIN  := bin/netlab-pod
# The node and cluster agents (kube-proxy, controller, LB, cluster DNS, supervisor): no
# Kubernetes, Prometheus or cobra packages; netlab finds it beside itself too.
AGENTBIN := bin/netlab-agent
PREFIX  ?= /usr/local
export PATH := $(dir $(GO)):$(PATH)
# go.mod asks for Go 1.26: any Go from 1.21 on fetches it through the module proxy (Debian's
# golang-go defaults to GOTOOLCHAIN=local, which would refuse). Set GOTOOLCHAIN to override.
export GOTOOLCHAIN ?= auto
# The binary carries its VCS revision (netlab version) when git can read the checkout; root
# building a checkout owned by another user cannot ("dubious ownership"): build without it.
BUILDVCS := $(shell git rev-parse --is-inside-work-tree >/dev/null 2>&1 && echo auto || echo false)

.PHONY: all build deps generate up down test unit vet bench bench-up bench-biglab bench-rules bench-l4 bench-l7 bench-dns bench-packets bench-live smoke clean install

all: build

deps:
	scripts/deps.sh

# Every binary is linked statically (no cgo): a big lab starts a thousand pods, and the
# dynamic loader and C library's start-up cost each about 1 ms of CPU; netlab itself starts
# twice per up and down (docs/design-notes.md, "The CLI's start"). Nothing here needs the C
# library: no user lookups, and names are never resolved through the host's resolver.
build:
	CGO_ENABLED=0 $(GO) build -buildvcs=$(BUILDVCS) -o bin/ ./cmd/netlab ./cmd/netlab-pod ./cmd/netlab-agent

# Rebuilds the committed eBPF object and its Go bindings (netlab/drops) with bpf2go. Needs
# clang, llvm, bpftool and libbpf-dev (Debian packages); building and testing do not.
generate:
	$(GO) generate ./netlab/drops

install: build
	install -m 0755 $(BIN) $(PREFIX)/bin/netlab
	install -m 0755 $(PODBIN) $(PREFIX)/bin/netlab-pod
	install -m 0755 $(AGENTBIN) $(PREFIX)/bin/netlab-agent

# Brings up the default lab (the embedded scenario); `make up FILE=scenarios/x.yaml` for another.
up: deps build
	./$(BIN) up $(if $(FILE),-f $(FILE),) $(if $(NAME),--name $(NAME),)

# Removes lab NAME, else the only lab up (and refuses to guess when several are); ALL=1
# removes every netlab lab on the machine, other people's too.
down: build
	./$(BIN) down $(if $(ALL),--all,$(if $(NAME),--name $(NAME),))

vet:
	@out=$$(gofmt -l cmd netlab scenarios); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

# The whole suite: unit tests and the root integration tests on real namespaces. TEST=1:
# deps.sh also installs the tests' own tools (vagrant, to validate the Vagrantfile).
test: vet
	TEST=1 scripts/deps.sh
	$(GO) test -count=1 -p 1 -timeout 15m ./...

unit:
	$(GO) test -count=1 -short ./...

# Vagrant VMs (Vagrantfile): NETLAB_VMS=2 for one VM per student, each with its own lab
# (NETLAB_LAB_FILE=scenarios/x.yaml for another lesson). vm-test: every VM's lab checks itself.
VAGRANT ?= vagrant
.PHONY: vm-up vm-test
vm-up:
	$(VAGRANT) up

vm-test:
	@vms=$$($(VAGRANT) status --machine-readable | awk -F, '$$3 == "state" {print $$2}' | sort -u); \
	if [ -z "$$vms" ]; then echo "vm-test: no VM (make vm-up first)"; exit 1; fi; \
	for vm in $$vms; do \
		echo "== $$vm"; \
		$(VAGRANT) ssh $$vm -c 'sudo netlab check' || exit 1; \
	done

# The course's contract check, a script kept OUTSIDE this repository (the shared course
# material beside the checkout): it brings the default lab up under a unique name, checks the
# contract's shapes and takes the lab down. SMOKE=/path/to/contract-smoke where it lives elsewhere.
SMOKE ?= ../shared/tools/contract-smoke
smoke: build
	@if [ ! -x "$(SMOKE)" ]; then echo "smoke: no contract-smoke at $(SMOKE) (outside this repository): run make smoke SMOKE=/path/to/contract-smoke"; exit 1; fi
	"$(SMOKE)" ./$(BIN)

bench: bench-up bench-biglab bench-rules bench-l4 bench-l7 bench-dns bench-live

bench-up: build
	BENCH=1 scripts/deps.sh
	scripts/bench-up.sh

# Big lab: 4 nodes x 250 pods beside Mininet single,1000: time to ready, PSS of every lab
# process, and what `status` reports right after up (docs/performance.md).
bench-biglab: build
	BENCH=1 scripts/deps.sh
	NODES=4 SIZES=250 STATUS_CALLS=3 ROUNDS=$(or $(ROUNDS),5) scripts/bench-up.sh

# Rule sync: 1000 (and 5000) Services x 2 endpoints, netlab vs raw iptables-restore; then
# kube-proxy's nftables mode vs its iptables mode side by side, and 10 000 Services in nftables
# mode (NFT_SIZE, NFT_ROUNDS).
bench-rules:
	NETLAB_BENCH_RULES=1 SIZES="$(or $(SIZES),1000)" $(GO) test -count=1 -run BenchRuleSync -v -timeout 30m ./netlab/kubeproxy

# L4: client -> LB VIP of a LoadBalancer Service vs pod IP directly (docs/performance.md).
bench-l4:
	BENCH=1 scripts/deps.sh
	scripts/bench-l4.sh

# L7: client -> netlab ingress (and via the VIP) vs nginx as the ingress on the same node.
bench-l7:
	BENCH=1 scripts/deps.sh
	scripts/bench-l7.sh

# Cluster DNS: queries/s through kube-dns and on the DNS pod's IP vs dnsmasq, from a pod.
bench-dns: build
	BENCH=1 scripts/deps.sh
	NETLAB=./$(BIN) scripts/bench-dns.sh

# netlab trace vs curl of the same URL; wrk through a VIP with `netlab drops --follow` vs not.
bench-packets:
	BENCH=1 scripts/deps.sh
	scripts/bench-packets.sh

clean:
	rm -rf bin

# Live changes: apply of one Service in a 300-pod lab vs down+up; rollout restart under wrk.
bench-live: build
	BENCH=1 scripts/deps.sh
	NETLAB=./$(BIN) scripts/bench-live.sh
