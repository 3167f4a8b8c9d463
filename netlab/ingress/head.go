package ingress

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Limits on an upstream's response head (nginx's proxy_buffer_size is 4–8 KiB; these are
// roomier, and the client side keeps its own limit).
const (
	maxHeadBytes  = 64 << 10
	maxHeadFields = 500
)

var errBadHead = errors.New("malformed response head from upstream")

// field is one response header line, its name in canonical form.
type field struct{ k, v string }

// exchange is the parsed head of one upstream response. Its slices are reused from
// request to request (exchanges pool): the head's fields are kept as a list and added
// to the client's header map only once the whole head is known to be good.
type exchange struct {
	status        int
	contentLength int64 // -1 when the head has none
	chunked       bool
	close         bool     // the upstream closes the connection after this response
	stream        bool     // an event stream: every piece is sent on at once
	fields        []field  // end-to-end fields, in order
	connNamed     []string // fields the upstream's Connection header names (hop-by-hop)
	nothingRead   bool     // no byte of a response arrived (a retry cannot duplicate)
	early         bool     // the answer came before the request's body was all sent
}

var exchanges = sync.Pool{New: func() any { return &exchange{fields: make([]field, 0, 16)} }}

func (x *exchange) reset() {
	clear(x.fields)
	*x = exchange{fields: x.fields[:0], connNamed: x.connNamed[:0], nothingRead: true}
}

func (x *exchange) release() {
	x.reset()
	exchanges.Put(x)
}

// dropped reports whether a response field must not reach the client: hop-by-hop
// fields, the ones the upstream's Connection header names, the framing (the server
// writes its own) and the headers the proxy owns.
func (x *exchange) dropped(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Te", "Trailer",
		"Transfer-Encoding", "Upgrade", HeaderRequestID, HeaderNode:
		return true
	}
	for _, n := range x.connNamed {
		if n == k {
			return true
		}
	}
	return false
}

// readHead reads the status line and header fields of the upstream's response, skipping
// informational (1xx) responses other than 101.
func (x *exchange) readHead(br *bufio.Reader, method string) error {
	for {
		x.reset()
		line, err := readLine(br)
		if err != nil {
			if len(line) > 0 {
				x.nothingRead = false
			}
			return err
		}
		x.nothingRead = false
		http10, status, ok := parseStatusLine(line)
		if !ok {
			return fmt.Errorf("%w: status line %q", errBadHead, truncate(line))
		}
		x.status = status
		x.close = http10
		x.contentLength = -1
		if err := x.readFields(br, http10); err != nil {
			return err
		}
		if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
			continue
		}
		return nil
	}
}

func (x *exchange) readFields(br *bufio.Reader, http10 bool) error {
	size := 0
	for {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if size += len(line); size > maxHeadBytes || len(x.fields) >= maxHeadFields {
			return fmt.Errorf("%w: head larger than %d bytes or %d fields", errBadHead, maxHeadBytes, maxHeadFields)
		}
		if line[0] == ' ' || line[0] == '\t' {
			return fmt.Errorf("%w: obsolete line folding", errBadHead)
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || bytes.IndexAny(line[:colon], " \t") >= 0 {
			return fmt.Errorf("%w: field %q", errBadHead, truncate(line))
		}
		k := canonicalKey(line[:colon])
		v := string(bytes.TrimSpace(line[colon+1:]))
		switch k {
		case "Content-Length":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || (x.contentLength >= 0 && n != x.contentLength) {
				return fmt.Errorf("%w: Content-Length %q", errBadHead, v)
			}
			if x.contentLength >= 0 {
				continue // a repeated, equal value
			}
			x.contentLength = n
		case "Transfer-Encoding":
			if headerHasToken([]string{v}, "chunked") {
				x.chunked = true
			}
			continue
		case "Connection":
			for _, t := range strings.Split(v, ",") {
				t = strings.TrimSpace(t)
				switch {
				case strings.EqualFold(t, "close"):
					x.close = true
				case strings.EqualFold(t, "keep-alive"):
					if http10 {
						x.close = false
					}
				case t != "" && !strings.EqualFold(t, "upgrade"):
					x.connNamed = append(x.connNamed, textproto.CanonicalMIMEHeaderKey(t))
				}
			}
			continue
		case "Content-Type":
			x.stream = strings.HasPrefix(v, "text/event-stream")
		}
		x.fields = append(x.fields, field{k, v})
	}
}

// readTrailers reads the fields after a chunked body into the client's trailers.
func (x *exchange) readTrailers(br *bufio.Reader, hdr http.Header) error {
	for n := 0; ; n++ {
		line, err := readLine(br)
		if err != nil {
			return &upstreamBodyError{err}
		}
		if len(line) == 0 {
			return nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || n >= maxHeadFields {
			return &upstreamBodyError{fmt.Errorf("%w: trailer %q", errBadHead, truncate(line))}
		}
		k := canonicalKey(line[:colon])
		if x.dropped(k) || k == "Content-Length" {
			continue
		}
		hdr[http.TrailerPrefix+k] = append(hdr[http.TrailerPrefix+k], string(bytes.TrimSpace(line[colon+1:])))
	}
}

// readLine returns one line without its CRLF (or LF); it is valid until the next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return line, fmt.Errorf("%w: line longer than %d bytes", errBadHead, br.Size())
		}
		return line, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// parseStatusLine reads "HTTP/1.x SSS reason".
func parseStatusLine(l []byte) (http10 bool, status int, ok bool) {
	if len(l) < 12 || string(l[:7]) != "HTTP/1." || l[8] != ' ' {
		return false, 0, false
	}
	switch l[7] {
	case '0':
		http10 = true
	case '1':
	default:
		return false, 0, false
	}
	s := l[9:12]
	if len(l) > 12 && l[12] != ' ' {
		return false, 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false, 0, false
		}
	}
	status = int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
	return http10, status, status >= 100
}

// canonicalKey returns the canonical form of a field name; the common names come
// without an allocation.
func canonicalKey(b []byte) string {
	switch string(b) {
	case "Content-Type", "content-type":
		return "Content-Type"
	case "Content-Length", "content-length":
		return "Content-Length"
	case "Date", "date":
		return "Date"
	case "Server", "server":
		return "Server"
	case "Connection", "connection":
		return "Connection"
	case "Transfer-Encoding", "transfer-encoding":
		return "Transfer-Encoding"
	case "Keep-Alive", "keep-alive":
		return "Keep-Alive"
	case "Cache-Control", "cache-control":
		return "Cache-Control"
	case "Last-Modified", "last-modified":
		return "Last-Modified"
	case "Etag", "ETag", "etag":
		return "Etag"
	case "Accept-Ranges", "accept-ranges":
		return "Accept-Ranges"
	case "Vary", "vary":
		return "Vary"
	case "Location", "location":
		return "Location"
	case "Set-Cookie", "set-cookie":
		return "Set-Cookie"
	case "X-Request-Id", "X-Request-ID", "x-request-id":
		return HeaderRequestID
	case "X-Netlab-Ingress-Node", "x-netlab-ingress-node":
		return HeaderNode
	}
	if m := keyCache.Load(); m != nil {
		if k, ok := (*m)[string(b)]; ok { // no allocation for the lookup
			return k
		}
	}
	k := textproto.CanonicalMIMEHeaderKey(string(b))
	rememberKey(string(b), k)
	return k
}

// keyCache maps field names as upstreams send them to their canonical form, for the
// names canonicalKey's list does not have (an application's own X-... fields): a
// copy-on-write map read without a lock, at most keyCacheMax names (upstreams choose
// them; past the cap a name is canonicalized anew each time).
var (
	keyCache   atomic.Pointer[map[string]string]
	keyCacheMu sync.Mutex
)

const keyCacheMax = 256

func rememberKey(raw, k string) {
	keyCacheMu.Lock()
	defer keyCacheMu.Unlock()
	var old map[string]string
	if m := keyCache.Load(); m != nil {
		old = *m
	}
	if len(old) >= keyCacheMax {
		return
	}
	if _, ok := old[raw]; ok {
		return
	}
	next := make(map[string]string, len(old)+1)
	for r, c := range old {
		next[r] = c
	}
	next[raw] = k
	keyCache.Store(&next)
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}
