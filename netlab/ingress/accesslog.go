package ingress

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"
)

// accessEntry is one access-log line (JSON, one object per line).
type accessEntry struct {
	Time       string  `json:"time"`
	RequestID  string  `json:"requestID"`
	Client     string  `json:"client"`
	Method     string  `json:"method"`
	Host       string  `json:"host"`
	Path       string  `json:"path"`
	Proto      string  `json:"proto"`
	Rule       string  `json:"rule"`
	Service    string  `json:"service"`
	Upstream   string  `json:"upstream"`
	Mode       string  `json:"upstreamMode,omitempty"` // service or endpoints; empty when not routed
	Status     int     `json:"status"`
	Bytes      int64   `json:"bytes"`
	DurationMs float64 `json:"durationMs"`
	UpstreamMs float64 `json:"upstreamMs"`
	Node       string  `json:"node"`
	Error      string  `json:"error,omitempty"`
}

// accessLogger writes whole lines under a lock so lines never interleave.
type accessLogger struct {
	mu sync.Mutex
	w  io.Writer
}

var logBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (l *accessLogger) write(e accessEntry) {
	b := logBufs.Get().(*bytes.Buffer)
	b.Reset()
	if err := json.NewEncoder(b).Encode(&e); err == nil { // Encode adds the newline
		l.mu.Lock()
		_, _ = l.w.Write(b.Bytes()) // a failing log sink must not fail requests
		l.mu.Unlock()
	}
	logBufs.Put(b)
}
