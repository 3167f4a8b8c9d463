package podagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netlabdev/netlab/netlab/ready"
)

// Config is what a pod agent serves.
type Config struct {
	Lab, Pod, Node, IP string
	Ports              []PortSpec
	// Leaving, when set, is asked when ctx ends (SIGTERM): true means the pod is being
	// terminated gracefully, and the agent then keeps serving, as an application in its
	// termination grace period does, without keep-alive (every answer closes its
	// connection, idle ones are closed), until Killed yields (SIGKILL ends it anyway).
	Leaving func() bool
	Killed  <-chan struct{}
	// ExitAtOnce, when set (by the netlab-pod binary, whose process ends when Run
	// returns), makes an end that is not graceful (ctx ended, Leaving false: down, pod
	// kill) return at once, without closing the listeners and connections one by one and
	// waiting for their goroutines: the process's exit closes them all, and a down of a
	// lab waits for thirty such exits or a thousand.
	ExitAtOnce bool
}

// PortSpec is a container port: number and protocol.
type PortSpec struct {
	Port     int
	Protocol string // TCP | UDP
}

// ParsePortSpec reads "8080/TCP" (protocol defaults to TCP).
func ParsePortSpec(s string) (PortSpec, error) {
	num, proto, _ := strings.Cut(s, "/")
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > 65535 {
		return PortSpec{}, fmt.Errorf("bad port %q", s)
	}
	proto = strings.ToUpper(proto)
	if proto == "" {
		proto = "TCP"
	}
	if proto != "TCP" && proto != "UDP" {
		return PortSpec{}, fmt.Errorf("bad protocol in %q", s)
	}
	return PortSpec{Port: n, Protocol: proto}, nil
}

// Echo is the pod echo response (a contract of the JSON it answers: these fields at least).
type Echo struct {
	Pod        string              `json:"pod"`
	Node       string              `json:"node"`
	PodIP      string              `json:"podIP"`
	Port       int                 `json:"port"`
	Protocol   string              `json:"protocol"`
	ClientIP   string              `json:"clientIP"`
	ClientPort int                 `json:"clientPort"`
	Method     string              `json:"method"`
	Host       string              `json:"host"`
	Path       string              `json:"path"`
	Query      string              `json:"query,omitempty"`
	Proto      string              `json:"proto,omitempty"`
	Headers    map[string][]string `json:"headers"`
	Time       string              `json:"time"`
	Lab        string              `json:"lab"`
	Requests   uint64              `json:"requests"`          // served by this pod so far
	Payload    string              `json:"payload,omitempty"` // UDP: the datagram received
}

// Run serves the echo on every port until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if len(cfg.Ports) == 0 {
		return errors.New("pod agent: no ports")
	}
	var served atomic.Uint64
	var wg sync.WaitGroup
	errc := make(chan error, len(cfg.Ports))
	var closers []func()
	var servers []*echoServer
	for _, ps := range cfg.Ports {
		addr := net.JoinHostPort("", strconv.Itoa(ps.Port))
		switch ps.Protocol {
		case "TCP":
			ln, err := listenTCP(ps.Port)
			if err != nil {
				return fmt.Errorf("listen tcp %s: %w", addr, err)
			}
			srv := &echoServer{handler: podHandler(cfg, ps.Port, &served), readHeaderTimeout: 10 * time.Second, idleTimeout: 120 * time.Second}
			servers = append(servers, srv)
			closers = append(closers, func() {
				sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_ = srv.shutdown(sctx)
			})
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := srv.serve(ln); err != nil && !errors.Is(err, errServerClosed) {
					errc <- err
				}
			}()
		case "UDP":
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				return fmt.Errorf("listen udp %s: %w", addr, err)
			}
			closers = append(closers, func() { pc.Close() })
			wg.Add(1)
			go func(port int) {
				defer wg.Done()
				serveUDP(pc, cfg, port, &served)
			}(ps.Port)
		}
	}
	log.Info("pod serving", "pod", cfg.Pod, "node", cfg.Node, "ip", cfg.IP, "ports", cfg.Ports)
	ready.Notify()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	graceful := err == nil && cfg.Leaving != nil && cfg.Leaving()
	if !graceful && cfg.ExitAtOnce {
		log.Info("pod stopped", "pod", cfg.Pod)
		return err
	}
	if graceful {
		for _, srv := range servers {
			srv.setKeepAlivesEnabled(false) // also closes idle connections
		}
		log.Info("pod terminating: serving until the grace period ends, without keep-alive", "pod", cfg.Pod)
		select {
		case <-cfg.Killed:
		case err = <-errc:
		}
	}
	for _, c := range closers {
		c()
	}
	wg.Wait()
	log.Info("pod stopped", "pod", cfg.Pod)
	return err
}

func podHandler(cfg Config, port int, served *atomic.Uint64) handlerFunc {
	podHeader := []string{"X-Netlab-Pod", cfg.Pod}
	return func(r *request) (int, string, []byte, []string) {
		n := served.Add(1)
		// /healthz is the agent's own health; every other path (a readinessProbe's among
		// them) gets the echo, which answers 200 as a serving container would.
		if r.Method == "GET" && r.Path == "/healthz" {
			return 200, "text/plain", []byte("ok\n"), nil
		}
		host, portStr, _ := net.SplitHostPort(r.RemoteAddr)
		cport, _ := strconv.Atoi(portStr)
		e := Echo{Pod: cfg.Pod, Node: cfg.Node, PodIP: cfg.IP, Port: port, Protocol: "TCP", ClientIP: host, ClientPort: cport,
			Method: r.Method, Host: r.Host, Path: r.Path, Query: r.RawQuery, Proto: r.Proto,
			Headers: r.Header, Time: time.Now().UTC().Format(time.RFC3339Nano), Lab: cfg.Lab, Requests: n}
		out, _ := json.MarshalIndent(e, "", "  ")
		return 200, "application/json", append(out, '\n'), podHeader
	}
}

// serveUDP answers every datagram with the echo JSON (no method/path: it is not HTTP).
func serveUDP(pc net.PacketConn, cfg Config, port int, served *atomic.Uint64) {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		ua, _ := from.(*net.UDPAddr)
		e := Echo{Pod: cfg.Pod, Node: cfg.Node, PodIP: cfg.IP, Port: port, Protocol: "UDP",
			Headers: map[string][]string{}, Time: time.Now().UTC().Format(time.RFC3339Nano), Lab: cfg.Lab,
			Requests: served.Add(1), Payload: strings.TrimSpace(string(buf[:min(n, 256)]))}
		if ua != nil {
			e.ClientIP, e.ClientPort = ua.IP.String(), ua.Port
		}
		out, _ := json.Marshal(e)
		_, _ = pc.WriteTo(append(out, '\n'), from)
	}
}

// listenBacklog is the pending connections a pod's listener queues (the kernel caps it at
// the namespace's net.core.somaxconn, 4096 by default).
const listenBacklog = 4096

// listenTCP listens on port of every IPv4 address of the namespace (lab namespaces are
// IPv4-only), as net.Listen("tcp", ":port") would, without its reading the listen backlog
// from /proc/sys/net/core/somaxconn: with a thousand namespaces on the machine the kernel
// finds that file's entry by walking every namespace's copy of it, which cost about as
// much CPU as the rest of a pod's start.
func listenTCP(port int) (net.Listener, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, syscall.IPPROTO_TCP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	f := os.NewFile(uintptr(fd), "tcp:"+strconv.Itoa(port))
	defer f.Close() // net.FileListener holds a copy of the descriptor
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return nil, os.NewSyscallError("setsockopt", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port}); err != nil {
		return nil, os.NewSyscallError("bind", err)
	}
	if err := syscall.Listen(fd, listenBacklog); err != nil {
		return nil, os.NewSyscallError("listen", err)
	}
	return net.FileListener(f)
}
