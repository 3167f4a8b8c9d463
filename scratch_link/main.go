package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
)

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	par, _ := strconv.Atoi(os.Args[2])
	node := "nl-bpx-node"
	var pods []string
	for i := 0; i < n; i++ {
		pods = append(pods, fmt.Sprintf("nl-bpx-p%d", i))
	}
	all := append([]string{node}, pods...)
	defer func() {
		for _, ns := range all {
			kernel.DeleteNetns(ns)
		}
	}()
	t := time.Now()
	for _, ns := range all {
		if err := kernel.CreateNetns(ns); err != nil {
			panic(err)
		}
	}
	fmt.Println("netns", time.Since(t))
	h := kernel.NewHandles()
	defer h.Close()
	if err := h.EnsureBridge(node, "cni0", "", []string{"10.9.0.1/16"}); err != nil {
		panic(err)
	}
	t = time.Now()
	if par <= 1 {
		for i, p := range pods {
			a := kernel.VethEnd{NS: p, Name: "eth0", Addrs: []string{fmt.Sprintf("10.9.%d.%d/16", i/200, i%200+2)}}
			b := kernel.VethEnd{NS: node, Name: fmt.Sprintf("veth%d", i), Master: "cni0", Hairpin: true}
			if err := h.AddVeth(a, b); err != nil {
				panic(err)
			}
		}
	} else {
		var wg sync.WaitGroup
		sem := make(chan bool, par)
		for i, p := range pods {
			wg.Add(1)
			sem <- true
			go func() {
				defer func() { <-sem; wg.Done() }()
				h := kernel.NewHandles()
				defer h.Close()
				a := kernel.VethEnd{NS: p, Name: "eth0", Addrs: []string{fmt.Sprintf("10.9.%d.%d/16", i/200, i%200+2)}}
				b := kernel.VethEnd{NS: node, Name: fmt.Sprintf("veth%d", i), Master: "cni0", Hairpin: true}
				if err := h.AddVeth(a, b); err != nil {
					panic(err)
				}
			}()
		}
		wg.Wait()
	}
	fmt.Println("veths", time.Since(t), time.Since(t)/time.Duration(n), "each")
}
