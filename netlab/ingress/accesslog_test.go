package ingress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// stallSink records each Write; while stalled, a Write signals entered and waits for
// release.
type stallSink struct {
	entered chan struct{} // one value per Write that begins
	release chan struct{} // closed: writes go through
	mu      sync.Mutex
	writes  []string
}

func newStallSink(stalled bool) *stallSink {
	s := &stallSink{entered: make(chan struct{}, 1<<10), release: make(chan struct{})}
	if !stalled {
		close(s.release)
	}
	return s
}

func (s *stallSink) Write(p []byte) (int, error) {
	s.entered <- struct{}{}
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, string(p))
	return len(p), nil
}

func (s *stallSink) Writes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes...)
}

// waitWrite waits for the next Write to begin (a guard, not a timed assertion: the
// writer either writes or the test is broken).
func (s *stallSink) waitWrite(t *testing.T) {
	t.Helper()
	select {
	case <-s.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no write of the access log within 10 s")
	}
}

func testLine(i int) []byte {
	return fmt.Appendf(nil, "{\"n\":%d,\"pad\":%q}\n", i, strings.Repeat("x", 80))
}

func testLines(from, to int) string {
	var b bytes.Buffer
	for i := from; i < to; i++ {
		b.Write(testLine(i))
	}
	return b.String()
}

// Lines that arrive while a write is under way go out together in the next one.
func TestAccessLogBatches(t *testing.T) {
	sink := newStallSink(true)
	l := newAccessLoggerSized(sink, logFlushDelay, logFlushSize, logBufferMax)
	l.writeLine(testLine(0))
	sink.waitWrite(t) // the writer holds the first line's batch, in a write that waits
	for i := 1; i < 100; i++ {
		l.writeLine(testLine(i))
	}
	close(sink.release)
	l.close()
	got := sink.Writes()
	if want := []string{testLines(0, 1), testLines(1, 100)}; !reflect.DeepEqual(got, want) {
		t.Errorf("writes:\n%q\nwant the first line, then the 99 others in one write:\n%q", got, want)
	}
}

// A batch that reaches the flush size is written at once, without waiting for the delay
// (an hour here).
func TestAccessLogWritesAFullBatchAtOnce(t *testing.T) {
	sink := newStallSink(false)
	l := newAccessLoggerSized(sink, time.Hour, 1<<10, 4<<10)
	t.Cleanup(l.close)
	n := 0
	for size := 0; size < 1<<10; size += len(testLine(n)) {
		l.writeLine(testLine(n))
		n++
	}
	sink.waitWrite(t)
	l.close()
	if got := strings.Join(sink.Writes(), ""); got != testLines(0, n) {
		t.Errorf("wrote %q, want the %d lines", got, n)
	}
}

// close writes what is buffered; a line after close is dropped and does not wait.
func TestAccessLogFlushesOnClose(t *testing.T) {
	sink := newStallSink(false)
	l := newAccessLoggerSized(sink, time.Hour, logFlushSize, logBufferMax)
	for i := range 3 {
		l.writeLine(testLine(i))
	}
	l.close()
	l.writeLine(testLine(3))
	l.close() // twice is fine
	if got := sink.Writes(); !reflect.DeepEqual(got, []string{testLines(0, 3)}) {
		t.Errorf("writes %q, want the 3 lines written before close, once", got)
	}
}

// A sink that stalls does not make the buffer grow: at its bound, a line waits for the
// write under way to end. Once the sink takes writes again every line arrives, in order.
func TestAccessLogBoundedWhenTheSinkStalls(t *testing.T) {
	const flushSize, max, lines = 1 << 10, 4 << 10, 1000
	sink := newStallSink(true)
	l := newAccessLoggerSized(sink, time.Hour, flushSize, max)
	var written atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range lines {
			l.writeLine(testLine(i))
			written.Add(1)
		}
	}()
	sink.waitWrite(t) // a full batch went to the sink, which holds it
	// The buffer fills up to its bound behind it (guarded wait, no timed assertion).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		l.mu.Lock()
		n := len(l.buf)
		l.mu.Unlock()
		if n >= max {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("buffer at %d bytes, never reached its bound %d", n, max)
		}
	}
	l.mu.Lock()
	n := len(l.buf)
	l.mu.Unlock()
	if lineLen := len(testLine(0)); n > max+lineLen {
		t.Errorf("buffer holds %d bytes while the sink stalls, bound %d + one line (%d)", n, max, lineLen)
	}
	if w := written.Load(); w >= lines {
		t.Fatalf("all %d lines were taken while the sink stalled", w)
	}
	close(sink.release)
	<-done
	l.close()
	if got := strings.Join(sink.Writes(), ""); got != testLines(0, lines) {
		t.Errorf("after the stall the sink got %d bytes, want the %d lines in order (%d bytes)", len(got), lines, len(testLines(0, lines)))
	}
}

// accessRef is the access-log line as encoding/json writes it: the reference for the
// hand-written encoder (names, order, omitted fields).
type accessRef struct {
	Time       time.Time `json:"time"`
	RequestID  string    `json:"requestID"`
	Client     string    `json:"client"`
	Method     string    `json:"method"`
	Host       string    `json:"host"`
	Path       string    `json:"path"`
	Proto      string    `json:"proto"`
	Rule       string    `json:"rule"`
	Service    string    `json:"service"`
	Upstream   string    `json:"upstream"`
	Mode       string    `json:"upstreamMode,omitempty"`
	Status     int       `json:"status"`
	Bytes      int64     `json:"bytes"`
	DurationMs float64   `json:"durationMs"`
	UpstreamMs float64   `json:"upstreamMs"`
	Node       string    `json:"node"`
	Worker     int       `json:"worker,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// checkAgainstEncodingJSON compares e's line with encoding/json's encoding of the same
// entry: one line, valid JSON, the same keys in the same order, the same values.
func checkAgainstEncodingJSON(t *testing.T, e accessEntry) {
	t.Helper()
	got := e.appendJSON(nil)
	if bytes.IndexByte(got, '\n') != len(got)-1 {
		t.Fatalf("not one line: %q", got)
	}
	if !json.Valid(got) {
		t.Fatalf("not valid JSON: %q", got)
	}
	ref := accessRef(e)
	ref.Time = e.Time.UTC() // the log's times are UTC
	want, err := json.Marshal(ref)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := jsonKeys(t, got), jsonKeys(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("keys %v, want %v", g, w)
	}
	var gm, wm map[string]any
	if err := json.Unmarshal(got, &gm); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &wm); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gm, wm) {
		t.Errorf("line %s\ndecodes to %v\nencoding/json: %s\ndecodes to %v", got, gm, want, wm)
	}
}

// jsonKeys lists an object's keys in order.
func jsonKeys(t *testing.T, b []byte) []string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	if _, err := d.Token(); err != nil { // {
		t.Fatal(err)
	}
	var keys []string
	for d.More() {
		k, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestAccessLogLineMatchesEncodingJSON(t *testing.T) {
	base := accessEntry{
		Time: time.Date(2026, 12, 2, 8, 30, 1, 123456789, time.FixedZone("x", 3600)), RequestID: "abc",
		Client: "10.0.0.1", Method: "GET", Host: "app.example", Path: "/", Proto: "HTTP/1.1",
		Rule: "app.example/", Service: "default/web:80", Upstream: "10.96.0.10:80",
		Status: 200, Bytes: 1234, DurationMs: 0.25, UpstreamMs: 0.125, Node: "node-1",
	}
	all := base
	all.Mode, all.Worker, all.Error = UpstreamEndpoints, 2, "upstream timed out"
	tiny := base
	tiny.DurationMs, tiny.UpstreamMs = 0.001, 1e-7
	odd := base
	odd.Path, odd.Host, odd.Error = "/a\"b\\c\x00\x1f\x7f\n\r\t\b\f<>&\u2028\u2029é\xff\xc3", "ü.example\xed\xa0\x80", "\U0001F600\x01"
	for name, e := range map[string]accessEntry{"base": base, "all fields": all, "tiny floats": tiny, "odd strings": odd} {
		t.Run(name, func(t *testing.T) { checkAgainstEncodingJSON(t, e) })
	}
}

// FuzzAccessLogJSON checks the hand-written encoder against encoding/json for any strings
// and numbers (its seed corpus runs as a normal test).
func FuzzAccessLogJSON(f *testing.F) {
	for _, s := range []string{
		"", "plain", `"quoted"`, `back\slash`, "\x00\x01\x1f\x7f", "\n\r\t\b\f", "<script>&amp;",
		"\u2028\u2029", "é ü 中文", "\U0001F600", "\xff\xfe", "a\xc3", "\xed\xa0\x80", "\xef\xbf\xbd",
		strings.Repeat("\\\"", 40),
	} {
		f.Add(s, "/p", 200, int64(10), 0)
	}
	f.Add("GET", "/x?y=\"z\"", 499, int64(-1), 3)
	f.Fuzz(func(t *testing.T, s, path string, status int, n int64, worker int) {
		e := accessEntry{
			Time: time.Unix(1764664200, int64(n)&0x3fffffff), RequestID: s, Client: s, Method: s, Host: s,
			Path: path, Proto: s, Rule: path, Service: s, Upstream: s, Mode: s, Status: status,
			Bytes: n, DurationMs: float64(status) / 8, UpstreamMs: float64(n%1000) / 1000, Node: s,
			Worker: worker, Error: path,
		}
		if worker < 0 {
			e.Worker = 0 // the encoder writes a worker only when positive (as omitempty does for 0)
		}
		checkAgainstEncodingJSON(t, e)
		// A string alone: what encoding/json decodes from it is what it decodes from
		// encoding/json's encoding (invalid UTF-8 as U+FFFD), and no raw control byte.
		got := appendJSONString(nil, s)
		var dec, ref string
		if err := json.Unmarshal(got, &dec); err != nil {
			t.Fatalf("%q encodes to invalid JSON %q: %v", s, got, err)
		}
		want, _ := json.Marshal(s)
		_ = json.Unmarshal(want, &ref)
		if dec != ref || !utf8.ValidString(dec) {
			t.Errorf("%q: encoded %q decodes to %q, encoding/json's to %q", s, got, dec, ref)
		}
		for _, c := range got {
			if c < 0x20 {
				t.Fatalf("%q: raw control byte %#x in %q", s, c, got)
			}
		}
	})
}
