package ingress

import (
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// accessEntry is one access-log line (JSON, one object per line).
type accessEntry struct {
	Time       time.Time
	RequestID  string
	Client     string
	Method     string
	Host       string
	Path       string
	Proto      string
	Rule       string
	Service    string
	Upstream   string
	Mode       string // service or endpoints; empty when not routed
	Status     int
	Bytes      int64
	DurationMs float64
	UpstreamMs float64
	Node       string
	Worker     int    // omitted when 0 (one process serves the node)
	Error      string // omitted when empty
}

// appendJSON encodes e as one JSON object and a newline, with the field names and order
// the access log has always had (time, requestID, client, method, host, path, proto,
// rule, service, upstream, upstreamMode, status, bytes, durationMs, upstreamMs, node,
// worker, error). Hand-written: encoding/json's reflection was a few percent of the proxy's CPU.
func (e *accessEntry) appendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "requestID", e.RequestID)
	b = appendField(b, "client", e.Client)
	b = appendField(b, "method", e.Method)
	b = appendField(b, "host", e.Host)
	b = appendField(b, "path", e.Path)
	b = appendField(b, "proto", e.Proto)
	b = appendField(b, "rule", e.Rule)
	b = appendField(b, "service", e.Service)
	b = appendField(b, "upstream", e.Upstream)
	if e.Mode != "" {
		b = appendField(b, "upstreamMode", e.Mode)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, `,"durationMs":`...)
	b = strconv.AppendFloat(b, e.DurationMs, 'f', -1, 64)
	b = append(b, `,"upstreamMs":`...)
	b = strconv.AppendFloat(b, e.UpstreamMs, 'f', -1, 64)
	b = appendField(b, "node", e.Node)
	if e.Worker > 0 {
		b = append(b, `,"worker":`...)
		b = strconv.AppendInt(b, int64(e.Worker), 10)
	}
	if e.Error != "" {
		b = appendField(b, "error", e.Error)
	}
	return append(b, "}\n"...)
}

func appendField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendJSONString(b, v)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD (as encoding/json does).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Access-log batching: lines are encoded on the request's goroutine into a shared buffer
// and written by one goroutine in batches — at most logFlushDelay after the first line of a
// batch, or at once when logFlushSize is reached — so a request does not wait for a
// write(2) while the sink keeps up.
//
// The buffer is bounded: when the sink stalls (a pipe nobody reads, a slow disk) and
// logBufferMax bytes wait besides the batch being written, a request that logs waits
// until that write ends, as an nginx worker with `access_log ... buffer=` writes its full
// buffer itself and waits for that write. No line is dropped while the logger runs: `trace`
// finds a request by its line, and the log is the record of 499s and aborted answers.
// The lines held stay below 2 × logBufferMax plus two lines (the batch being written and
// the buffer filling behind it).
const (
	logFlushDelay = 20 * time.Millisecond
	logFlushSize  = 64 << 10
	logBufferMax  = 1 << 20
)

// accessLogger batches whole lines; lines never interleave or split.
type accessLogger struct {
	w         io.Writer
	delay     time.Duration // logFlushDelay
	flushSize int           // logFlushSize
	max       int           // logBufferMax
	mu        sync.Mutex
	space     sync.Cond // signalled when the writer takes the buffer
	buf       []byte
	closed    bool          // the writer has stopped: lines are dropped
	kick      chan struct{} // a line arrived in an empty buffer, or the buffer is full
	stop      chan struct{}
	done      chan struct{}
	once      sync.Once
}

func newAccessLogger(w io.Writer) *accessLogger {
	return newAccessLoggerSized(w, logFlushDelay, logFlushSize, logBufferMax)
}

func newAccessLoggerSized(w io.Writer, delay time.Duration, flushSize, max int) *accessLogger {
	l := &accessLogger{w: w, delay: delay, flushSize: flushSize, max: max,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	l.space.L = &l.mu
	go l.run()
	return l
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (l *accessLogger) write(e *accessEntry) {
	bp := lineBufs.Get().(*[]byte)
	line := e.appendJSON((*bp)[:0])
	l.writeLine(line)
	*bp = line
	lineBufs.Put(bp)
}

// writeLine adds one encoded line to the buffer, first waiting while the buffer is at its
// bound (the sink has not taken the previous batch yet).
func (l *accessLogger) writeLine(line []byte) {
	l.mu.Lock()
	for len(l.buf) >= l.max && !l.closed {
		l.space.Wait()
	}
	if l.closed {
		l.mu.Unlock()
		return
	}
	first := len(l.buf) == 0
	l.buf = append(l.buf, line...)
	full := len(l.buf) >= l.flushSize
	l.mu.Unlock()
	if first || full {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

func (l *accessLogger) run() {
	defer close(l.done)
	var spare []byte
	t := time.NewTimer(l.delay)
	t.Stop()
	for {
		select {
		case <-l.kick:
		case <-l.stop:
			l.flush(&spare, true)
			return
		}
		l.mu.Lock()
		full := len(l.buf) >= l.flushSize
		l.mu.Unlock()
		if !full {
			t.Reset(l.delay)
			select {
			case <-t.C:
			case <-l.kick: // full, or a line after a flush that raced: write now
				t.Stop()
			case <-l.stop:
				t.Stop()
				l.flush(&spare, true)
				return
			}
		}
		l.flush(&spare, false)
	}
}

// flush writes what is buffered, swapping in the spare buffer so writers go on meanwhile
// (and those waiting for room are woken). last marks the writer's end: later lines are
// dropped.
func (l *accessLogger) flush(spare *[]byte, last bool) {
	l.mu.Lock()
	b := l.buf
	l.buf = (*spare)[:0]
	l.closed = last
	l.space.Broadcast()
	l.mu.Unlock()
	if len(b) > 0 {
		_, _ = l.w.Write(b) // a failing log sink must not fail requests
	}
	if cap(b) > 4*l.flushSize {
		b = nil // do not keep a burst's buffer forever
	}
	*spare = b
}

// close writes what is left and stops the writer; lines written after close are dropped.
func (l *accessLogger) close() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
}
