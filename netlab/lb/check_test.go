package lb

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// closedPort returns a 127.0.0.1 address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestCheckOnce(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer ok.Close()
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable) // kube-proxy's healthCheckNodePort without local endpoints
	}))
	defer sick.Close()
	redirect := httptest.NewServer(http.RedirectHandler("/elsewhere", http.StatusFound))
	defer redirect.Close()
	tlsOK := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer tlsOK.Close()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()

	host := func(s *httptest.Server) string {
		return strings.TrimPrefix(strings.TrimPrefix(s.URL, "http://"), "https://")
	}
	closed := closedPort(t)
	c := &Checker{Config: CheckConfig{Timeout: 2 * time.Second}}
	cases := []struct {
		p       Probe
		healthy bool
		errHas  string
	}{
		{Probe{Type: CheckTCP, Addr: host(ok)}, true, ""},
		{Probe{Addr: closed}, false, "connection refused"},
		{Probe{Type: CheckHTTP, Addr: host(ok), Path: "/healthz"}, true, ""},
		{Probe{Type: CheckHTTP, Addr: host(ok), Path: "/other"}, false, "status 404"},
		{Probe{Type: CheckHTTP, Addr: host(sick), Path: "/healthz"}, false, "status 503"},
		{Probe{Type: CheckHTTP, Addr: host(redirect)}, false, "status 302"},
		{Probe{Type: CheckHTTP, Addr: closed}, false, "connection refused"},
		{Probe{Type: CheckHTTPS, Addr: host(tlsOK)}, true, ""},
		{Probe{Type: "icmp", Addr: host(ok)}, false, "unknown check type"},
	}
	for _, tc := range cases {
		err := c.Check(context.Background(), tc.p)
		if (err == nil) != tc.healthy {
			t.Errorf("%s: err %v, want healthy=%v", tc.p.Key(), err, tc.healthy)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%s: err %q does not mention %q", tc.p.Key(), err, tc.errHas)
		}
	}

	// The timeout bounds a check against a server that never answers.
	slow := &Checker{Config: CheckConfig{Timeout: 50 * time.Millisecond}}
	err := slow.Check(context.Background(), Probe{Type: CheckHTTP, Addr: host(hang)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hanging server: %v, want a deadline error", err)
	}
}

func TestCheckInjectedDial(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	real := strings.TrimPrefix(srv.URL, "http://")
	var dialed []string
	var mu sync.Mutex
	c := &Checker{
		Config: CheckConfig{Timeout: time.Second},
		// The lab address 172.18.0.11:30080 is reached through the test server.
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dialed = append(dialed, addr)
			mu.Unlock()
			if addr == "172.18.0.11:30080" {
				var d net.Dialer
				return d.DialContext(ctx, network, real)
			}
			return nil, errors.New("no route")
		},
	}
	if err := c.Check(context.Background(), Probe{Type: CheckHTTP, Addr: "172.18.0.11:30080", Path: "/healthz"}); err != nil {
		t.Errorf("check through injected dial: %v", err)
	}
	if err := c.Check(context.Background(), Probe{Type: CheckTCP, Addr: "172.18.0.12:30080"}); err == nil || !strings.Contains(err.Error(), "no route") {
		t.Errorf("tcp check through failing dial: %v", err)
	}
	if len(dialed) != 2 || dialed[0] != "172.18.0.11:30080" || dialed[1] != "172.18.0.12:30080" {
		t.Errorf("dialed %v", dialed)
	}
}

// waitTransition returns the next transition or fails after a generous deadline (a hang
// guard, not a timing assertion).
func waitTransition(t *testing.T, events <-chan Transition) Transition {
	t.Helper()
	select {
	case tr := <-events:
		return tr
	case <-time.After(20 * time.Second):
		t.Fatal("no health transition")
		return Transition{}
	}
}

func TestCheckerRun(t *testing.T) {
	var healthy atomic.Bool
	var checks atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		checks.Add(1)
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	closed := closedPort(t)

	var clockMu sync.Mutex
	clock := time.Unix(1_700_000_000, 0)
	c := &Checker{
		Config: CheckConfig{Interval: 5 * time.Millisecond, Timeout: time.Second, Rise: 2, Fall: 3},
		Now: func() time.Time {
			clockMu.Lock()
			defer clockMu.Unlock()
			clock = clock.Add(time.Second)
			return clock
		},
	}
	good := Probe{Type: CheckHTTP, Addr: addr, Path: "/healthz"}
	dead := Probe{Type: CheckTCP, Addr: closed}
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan Transition)
	done := make(chan error, 1)
	healthy.Store(true)
	// good is listed twice (two backends sharing one check); it is checked once.
	go func() { done <- c.Run(ctx, []Probe{good, dead, good}, events) }()

	up := waitTransition(t, events)
	if up.Probe != good || !up.Up || up.Err != "" {
		t.Fatalf("first transition %+v, want %s up", up, good.Key())
	}
	healthy.Store(false)
	down := waitTransition(t, events)
	if down.Probe != good || down.Up || !strings.Contains(down.Err, "503") || !down.At.After(up.At) {
		t.Fatalf("second transition %+v, want %s down after %v with the 503", down, good.Key(), up.At)
	}
	st := c.Status()
	if s := st[good.Key()]; s.Up || s.Transitions != 2 || !s.Since.Equal(down.At) || s.FailRun < 3 {
		t.Errorf("status of %s: %+v", good.Key(), s)
	}
	if s := st[dead.Key()]; s.Up || s.Transitions != 0 || s.FailRun == 0 {
		t.Errorf("status of the closed port: %+v, want down with failures and no transition", s)
	}
	if len(st) != 2 {
		t.Errorf("%d probes tracked, want 2 (duplicates merged)", len(st))
	}
	healthy.Store(true)
	if back := waitTransition(t, events); back.Probe != good || !back.Up {
		t.Fatalf("third transition %+v, want %s up again", back, good.Key())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if checks.Load() < 2+3+2 {
		t.Errorf("only %d checks reached the server", checks.Load())
	}
}

func TestCheckerRunNeedsInterval(t *testing.T) {
	if err := (&Checker{}).Run(context.Background(), nil, nil); err == nil {
		t.Error("Run without an interval did not fail")
	}
}

// lockedBuffer is a log sink safe for the checker's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCheckerRunLogsFailuresBounded scripts a probe's results and counts the "check
// failed" lines: failures are logged while the probe is up (they count toward fall) and
// on the first failure after a success, never on every interval while it stays down.
func TestCheckerRunLogsFailuresBounded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string // one result per check: S success, F failure
		want   int
	}{
		// Up at once; three failures while up (the third takes it down); three quiet ones;
		// back up after two successes; the same again.
		{"flapping", "SSFFFFFFSSFFFFF", 6},
		// Never answers: only the first failure is logged.
		{"always down", "FFFFFFFFFFFF", 1},
		// Down, one success (not enough to rise), down again: the failure after the
		// success is logged once more.
		{"down with a blip", "FFFFSFFFF", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var calls atomic.Int64
			var out lockedBuffer
			c := &Checker{
				Config: CheckConfig{Interval: time.Millisecond, Timeout: time.Second, Rise: 2, Fall: 3, FirstDecides: true},
				Logger: slog.New(slog.NewJSONHandler(&out, nil)),
				Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
					i := int(calls.Add(1)) - 1
					if i >= len(tc.script) {
						cancel() // the script is over: this check is not observed
						<-ctx.Done()
						return nil, ctx.Err()
					}
					if tc.script[i] == 'S' {
						a, b := net.Pipe()
						b.Close()
						return a, nil
					}
					return nil, errors.New("connection refused")
				},
			}
			events := make(chan Transition, len(tc.script))
			if err := c.Run(ctx, []Probe{{Type: CheckTCP, Addr: "172.18.0.11:80"}}, events); err != nil {
				t.Fatalf("Run: %v", err)
			}
			logs := out.String()
			if got := strings.Count(logs, `"msg":"check failed"`); got != tc.want {
				t.Errorf("script %s: %d failed checks logged, want %d\n%s", tc.script, got, tc.want, logs)
			}
			if !strings.Contains(logs, "connection refused") {
				t.Errorf("the logged failure lacks its error:\n%s", logs)
			}
		})
	}
}

// A real server still starting when the checks begin (its first three checks refused) is
// not first taken down within StartGrace: its first success decides, up at the fourth
// check. Without the grace, the first refused check decides (down, silently: a probe starts
// down) and the server comes up only after Rise successes, at the fifth.
func TestStartGraceWaitsForAStartingServer(t *testing.T) {
	for _, tc := range []struct {
		grace     time.Duration
		wantCheck int64
	}{{time.Hour, 4}, {0, 5}} {
		ctx, cancel := context.WithCancel(context.Background())
		var calls atomic.Int64
		c := &Checker{
			Config: CheckConfig{Interval: time.Millisecond, Timeout: time.Second, Rise: 2, Fall: 2, FirstDecides: true,
				StartGrace: tc.grace, StartRetry: time.Millisecond},
			// A transition's time is the number of checks made when it was observed.
			Now: func() time.Time { return time.Unix(calls.Load(), 0) },
			Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
				if calls.Add(1) <= 3 {
					return nil, errors.New("connection refused")
				}
				a, b := net.Pipe()
				b.Close()
				return a, nil
			},
		}
		events := make(chan Transition, 1)
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx, []Probe{{Type: CheckTCP, Addr: "172.18.0.11:80"}}, events) }()
		first := <-events
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if !first.Up || first.At.Unix() != tc.wantCheck {
			t.Errorf("grace %v: first transition up=%v at check %d, want up at check %d", tc.grace, first.Up, first.At.Unix(), tc.wantCheck)
		}
	}
}
