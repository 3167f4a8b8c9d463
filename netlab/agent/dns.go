package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/netlabdev/netlab/netlab/dns"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/ready"
	"github.com/netlabdev/netlab/netlab/rundir"
	"golang.org/x/net/ipv4"
)

// DNSConfig configures one pod of the cluster DNS.
type DNSConfig struct {
	Lab, Pod, Node, IP string
	// Dir is the lab's runtime directory (default /run/netlab/<lab>).
	Dir string
	// Port is where queries are answered, over UDP and TCP (default 53).
	Port int
	// ReadyPort serves GET /ready (200 once the records are loaded), as CoreDNS's ready
	// plugin, and GET /health (default 8181).
	ReadyPort int
	// Poll is how often endpoints.json is checked for a change (default 50 ms) when
	// inotify cannot tell (rundir.Watch); with it, a change wakes the agent at once.
	Poll time.Duration
}

// RunDNS answers the lab's cluster DNS queries on the pod's port 53 (UDP and TCP) from
// the plan's Services and the endpoints controller's readiness, rebuilding its records
// whenever endpoints.json or plan.json changes, until ctx ends.
func RunDNS(ctx context.Context, cfg DNSConfig, log *slog.Logger) error {
	dir := rundir.Resolve(cfg.Lab, cfg.Dir)
	if cfg.Port == 0 {
		cfg.Port = plan.DNSPort
	}
	if cfg.ReadyPort == 0 {
		cfg.ReadyPort = plan.DNSReadyPort
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 50 * time.Millisecond
	}
	planPath := dir.Plan()
	epPath := dir.Endpoints()
	// The controller's and up's writes wake the agent (inotify), followed from before the
	// first read; without inotify, it polls.
	watch := rundir.Watch(ctx, filepath.Dir(epPath), filepath.Base(epPath), filepath.Base(planPath))
	planStamp := rundir.FileStamp(planPath)
	p, err := rundir.ReadPlanView(planPath, rundir.DNSPlan)
	if err != nil {
		return err
	}
	var table atomic.Pointer[dns.Table]
	var gen atomic.Int64
	first := true
	pStamp := planStamp // the version of the plan file p was read from
	load := func() rundir.Stamp {
		st := rundir.FileStamp(epPath) // before the read: a later write shows up next poll
		// The plan changes under live changes (apply, scale), and the controller writes
		// the endpoints after it: read it again with them (not at the first load, right
		// after the read above: at 1000 pods a read is ~0.1 s of CPU).
		if !first {
			ps := rundir.FileStamp(planPath)
			if np, err := rundir.ReadPlanView(planPath, rundir.DNSPlan); err == nil {
				p, pStamp = np, ps
			}
		}
		first = false
		var ready func(string) bool
		var serial uint32
		if ef, err := dir.ReadEndpoints(); err == nil {
			ready = func(pod string) bool { return ef.PodReady[pod] }
			gen.Store(ef.Generation)
			// The SOA serial: when the controller wrote the endpoints, the same in every
			// DNS pod (CoreDNS: the time of the last change it saw).
			serial = uint32(ef.Updated.Unix())
		}
		dc := dns.FromPlan(p, ready)
		dc.Serial = serial
		table.Store(dns.New(dc))
		// What the records now come from, for a change that waits until every ready DNS
		// pod answers by the plan it wrote.
		if err := dir.WriteDNSLoaded(rundir.DNSLoaded{Pod: cfg.Pod, Plan: pStamp.String(), Generation: gen.Load(),
			At: time.Now().UTC()}); err != nil {
			log.Warn("publish what the records come from", "err", err)
		}
		return st
	}
	last := load()

	addr := net.JoinHostPort("", strconv.Itoa(cfg.Port))
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return fmt.Errorf("listen udp %s: %w", addr, err)
	}
	ln, err := listenTCP(addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("listen tcp %s: %w", addr, err)
	}
	rln, err := listenTCP(net.JoinHostPort("", strconv.Itoa(cfg.ReadyPort)))
	if err != nil {
		pc.Close()
		ln.Close()
		return fmt.Errorf("listen ready port: %w", err)
	}
	var queries atomic.Uint64
	// TCP: miekg/dns's server (length-prefixed messages, several per connection).
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		queries.Add(1)
		_ = w.WriteMsg(table.Load().Reply(req, false))
	})
	tcpSrv := &mdns.Server{Listener: ln, Handler: handler, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("OK")) }
	mux.HandleFunc("GET /ready", ok)
	mux.HandleFunc("GET /health", ok)
	readySrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	errc := make(chan error, 3)
	started := make(chan struct{}, 1)
	tcpSrv.NotifyStartedFunc = func() { started <- struct{}{} }
	// UDP: one loop reading, answering and writing in turn — one receive and one send per
	// query, no goroutine per packet (miekg/dns's server starts one) and, with one P, no
	// thread handing packets to another: the CPU a query costs is the syscalls' and the
	// answer's, not the scheduler's.
	ready.SetProcs(1)
	go serveDNSUDP(pc.(*net.UDPConn), &table, &queries)
	go func() { errc <- tcpSrv.ActivateAndServe() }()
	go func() {
		if err := readySrv.Serve(rln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	select {
	case <-started:
	case err := <-errc:
		return fmt.Errorf("dns server: %w", err)
	}
	log.Info("dns serving", "pod", cfg.Pod, "node", cfg.Node, "ip", cfg.IP, "port", cfg.Port,
		"domain", table.Load().Domain(), "services", len(p.Services), "generation", gen.Load())
	NotifyReady()

	poll := cfg.Poll
	if watch.Active() {
		poll = max(poll, 5*time.Second)
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = pc.Close()
			_ = tcpSrv.Shutdown()
			_ = readySrv.Close()
			log.Info("dns stopped", "pod", cfg.Pod, "queries", queries.Load())
			return nil
		case err := <-errc:
			return fmt.Errorf("dns server: %w", err)
		case <-tick.C:
		case <-watch.C:
		}
		// A changed plan (Services added or removed) is read again with the endpoints.
		replanned := false
		if st := rundir.FileStamp(planPath); st != planStamp {
			if np, err := rundir.ReadPlanView(planPath, rundir.DNSPlan); err == nil {
				p, planStamp, replanned = np, st, true
			}
		}
		if !replanned && rundir.FileStamp(epPath) == last {
			continue
		}
		last = load()
		log.Info("dns records reloaded", "generation", gen.Load())
	}
}

// serveDNSUDP answers queries on conn until it is closed, a batch at a time: one
// recvmmsg takes every query waiting (up to udpBatch), one sendmmsg sends their answers.
// A query that does not parse gets FORMERR (dns.FormErr); a response, or less than a
// header, no answer.
func serveDNSUDP(conn *net.UDPConn, table *atomic.Pointer[dns.Table], queries *atomic.Uint64) {
	const udpBatch = 32
	pc := ipv4.NewPacketConn(conn)
	in := make([]ipv4.Message, udpBatch)
	out := make([]ipv4.Message, udpBatch)
	outBufs := make([][]byte, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, mdns.MaxMsgSize)}
		outBufs[i] = make([]byte, 0, 4096)
		out[i].Buffers = make([][]byte, 1)
	}
	for {
		n, err := pc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		k := 0
		for _, m := range in[:n] {
			req := new(mdns.Msg)
			var reply *mdns.Msg
			if err := req.Unpack(m.Buffers[0][:m.N]); err != nil {
				reply = dns.FormErr(m.Buffers[0][:m.N])
			} else if !req.Response {
				reply = table.Load().Reply(req, true)
			}
			if reply == nil {
				continue
			}
			b, err := reply.PackBuffer(outBufs[k])
			if err != nil {
				continue
			}
			out[k].Buffers[0], out[k].Addr = b, m.Addr
			k++
		}
		queries.Add(uint64(k))
		for sent := 0; sent < k; {
			w, err := pc.WriteBatch(out[sent:k], 0)
			if err != nil {
				break
			}
			sent += w
		}
	}
}
