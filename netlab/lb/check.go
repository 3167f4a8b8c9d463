package lb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Check types.
const (
	CheckTCP   = "tcp"   // TCP connect
	CheckHTTP  = "http"  // HTTP GET, 2xx is healthy
	CheckHTTPS = "https" // HTTP GET over TLS (certificate not verified), 2xx is healthy
)

// Probe is one thing the Checker checks: a real server's address, or a separate check
// port such as a node's healthCheckNodePort.
type Probe struct {
	Type string `json:"type"` // tcp (default), http or https
	Addr string `json:"addr"` // "ip:port"
	Path string `json:"path,omitempty"`
	// Host, when set, is the HTTP Host header.
	Host string `json:"host,omitempty"`
}

// Key identifies the probe ("tcp://172.18.0.11:80", "http://172.18.0.11:31234/healthz").
// Several backends can share one probe.
func (p Probe) Key() string {
	t := p.Type
	if t == "" {
		t = CheckTCP
	}
	if t == CheckTCP {
		return "tcp://" + p.Addr
	}
	return t + "://" + p.Addr + p.path()
}

func (p Probe) path() string {
	if p.Path == "" {
		return "/"
	}
	return p.Path
}

// CheckConfig is how often and how patiently the Checker checks, and how many results
// it takes to change state.
type CheckConfig struct {
	Interval time.Duration
	Timeout  time.Duration
	Rise     int
	Fall     int
	// StartUp starts every probe up instead of down.
	StartUp bool
	// FirstDecides lets each probe's first result set its state at once (it overrides
	// StartUp); rise and fall count from then on.
	FirstDecides bool
	// StartGrace: for this long after Run begins, a probe's failed checks are not counted
	// until its first success (they are retried every StartRetry, default 10 ms), so that
	// a real server still starting when the checks begin is not first taken down, then
	// brought up only after Rise more checks. Zero: every check counts.
	StartGrace time.Duration
	StartRetry time.Duration
}

// Transition is a probe changing state.
type Transition struct {
	Probe Probe     `json:"probe"`
	Up    bool      `json:"up"`
	At    time.Time `json:"at"`
	// Err is the last failed check's error when going down.
	Err string `json:"err,omitempty"`
}

// Checker runs health checks. Dial and Now may be replaced (tests); Logger may be nil.
type Checker struct {
	Config CheckConfig
	// Dial opens connections for both TCP and HTTP checks; nil uses a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now stamps check results and transitions; nil uses time.Now.
	Now    func() time.Time
	Logger *slog.Logger

	mu     sync.Mutex
	states map[string]*Health
	http   *http.Client
	once   sync.Once
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Checker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.Dial != nil {
		return c.Dial(ctx, network, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func (c *Checker) client() *http.Client {
	c.once.Do(func() {
		c.http = &http.Client{
			Transport: &http.Transport{
				DialContext:       c.dial,
				DisableKeepAlives: true,
				Proxy:             nil,
				// The check only asks whether the server answers; the lab's certificates
				// are self-signed.
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	})
	return c.http
}

// Check runs one check of p, bounded by the configured timeout (if any).
func (c *Checker) Check(ctx context.Context, p Probe) error {
	if c.Config.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Config.Timeout)
		defer cancel()
	}
	switch p.Type {
	case "", CheckTCP:
		conn, err := c.dial(ctx, "tcp", p.Addr)
		if err != nil {
			return fmt.Errorf("tcp check %s: %w", p.Addr, err)
		}
		return conn.Close()
	case CheckHTTP, CheckHTTPS:
		url := p.Type + "://" + p.Addr + p.path()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("http check %s: %w", url, err)
		}
		if p.Host != "" {
			req.Host = p.Host
		}
		req.Header.Set("User-Agent", "netlab-lb-check")
		resp, err := c.client().Do(req)
		if err != nil {
			return fmt.Errorf("http check %s: %w", url, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("http check %s: status %d", url, resp.StatusCode)
		}
		return nil
	}
	return fmt.Errorf("unknown check type %q", p.Type)
}

// Status returns a snapshot of every probe's state, by Probe.Key.
func (c *Checker) Status() map[string]HealthStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]HealthStatus, len(c.states))
	for k, h := range c.states {
		out[k] = h.Status()
	}
	return out
}

// observe records a result and returns the transition, if any. logFailure reports whether
// a failed check is worth a log line: while the probe is up (the failure counts toward
// fall) or when it is the first failure after a success (or the first check). Failures
// of a probe that stays down are not logged each interval, so the log stays bounded.
func (c *Checker) observe(p Probe, err error) (t Transition, changed, logFailure bool) {
	at := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.states[p.Key()]
	logFailure = err != nil && (h.Up() || h.failRun == 0)
	if !h.Observe(err == nil, at) {
		return Transition{}, false, logFailure
	}
	t = Transition{Probe: p, Up: h.Up(), At: at}
	if err != nil {
		t.Err = err.Error()
	}
	return t, true, logFailure
}

// Run checks every probe (duplicates by Key are checked once) right away and then every
// Config.Interval until ctx ends, sending each state change to events and logging it.
// It returns nil when ctx is cancelled.
func (c *Checker) Run(ctx context.Context, probes []Probe, events chan<- Transition) error {
	if c.Config.Interval <= 0 {
		return errors.New("health check interval must be positive")
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	unique := map[string]Probe{}
	c.mu.Lock()
	if c.states == nil {
		c.states = map[string]*Health{}
	}
	for _, p := range probes {
		if _, dup := unique[p.Key()]; dup {
			continue
		}
		unique[p.Key()] = p
		if _, ok := c.states[p.Key()]; !ok {
			if c.Config.FirstDecides {
				c.states[p.Key()] = NewHealthFirstDecides(c.Config.Rise, c.Config.Fall)
			} else {
				c.states[p.Key()] = NewHealth(c.Config.Rise, c.Config.Fall, c.Config.StartUp)
			}
		}
	}
	c.mu.Unlock()

	graceEnd := time.Now().Add(c.Config.StartGrace)
	retry := c.Config.StartRetry
	if retry <= 0 {
		retry = 10 * time.Millisecond
	}
	var wg sync.WaitGroup
	for _, p := range unique {
		wg.Go(func() {
			tick := time.NewTicker(c.Config.Interval)
			defer tick.Stop()
			starting := c.Config.StartGrace > 0
			for {
				err := c.Check(ctx, p)
				if ctx.Err() != nil {
					return
				}
				if starting && err != nil && time.Now().Before(graceEnd) {
					select {
					case <-time.After(retry):
						continue
					case <-ctx.Done():
						return
					}
				}
				starting = false
				t, changed, logFailure := c.observe(p, err)
				if logFailure {
					log.Info("check failed", "probe", p.Key(), "err", err)
				}
				if changed {
					state := "down"
					if t.Up {
						state = "up"
					}
					log.Info("health transition", "probe", p.Key(), "state", state,
						"at", t.At.Format(time.RFC3339Nano), "err", t.Err)
					select {
					case events <- t:
					case <-ctx.Done():
						return
					}
				}
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
	return nil
}
