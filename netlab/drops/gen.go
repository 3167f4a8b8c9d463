package drops

// The BPF object is compiled by `make generate` (clang, bpftool and libbpf-dev from
// Debian) and committed, so building and testing need no clang. vmlinux.h is dumped from
// the running kernel's BTF at generate time and not kept: CO-RE relocates the field
// offsets against whichever kernel loads the program.
//go:generate sh -c "bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux.h"
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type drop_event dropsBPF bpf/drops.c -- -I/usr/include -Ibpf
//go:generate rm -f bpf/vmlinux.h
