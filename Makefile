# netlab — see README.md. Every target that touches the kernel needs root (sudo make ...).
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN     := bin/netlab
PREFIX  ?= /usr/local
export PATH := $(dir $(GO)):$(PATH)

.PHONY: all build deps up down test unit integration vet fmt bench bench-up bench-rules bench-l4 bench-l7 smoke clean install

all: build

deps:
	scripts/deps.sh

build:
	$(GO) build -o $(BIN) ./cmd/netlab

install: build
	install -m 0755 $(BIN) $(PREFIX)/bin/netlab

# Brings up the default lab (the embedded scenario); `make up FILE=scenarios/x.yaml` for another.
up: deps build
	./$(BIN) up $(if $(FILE),-f $(FILE),) $(if $(NAME),--name $(NAME),)

down: build
	./$(BIN) down $(if $(NAME),--name $(NAME),--all)

vet:
	@out=$$(gofmt -l cmd netlab); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

# The whole suite: unit tests and the root integration tests on real namespaces.
test: deps vet
	$(GO) test -count=1 -p 1 -timeout 15m ./...

unit:
	$(GO) test -count=1 -short ./...

smoke: build
	../shared/tools/contract-smoke ./$(BIN)

bench: bench-up bench-rules bench-l4 bench-l7

bench-up: build
	BENCH=1 scripts/deps.sh
	scripts/bench-up.sh

clean:
	rm -rf bin
