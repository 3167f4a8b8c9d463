package ingress

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/rawio"
)

// An upstream that answers before it has read a large request body and closes the
// connection (Go's server does so above 256 KiB unread; an early 413 is the usual case)
// breaks the ingress's send of the body. Its answer still reaches the client, with the
// client connection closed after it, not a 502 — with and without raw upstream sockets.
func TestProxyRelaysAnAnswerThatCameBeforeTheBody(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_, _ = io.WriteString(w, "too large\n")
	}))
	t.Cleanup(up.Close)
	for _, wrap := range []bool{false, true} {
		opts := Options{Resolve: staticResolver(map[string]string{"default/web": hostOf(up)})}
		if wrap {
			opts.WrapUpstream = rawio.Wrap
		}
		h, err := NewHandler(opts, webAPITable(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		px := startProxy(t, h)
		rc := dialRaw(t, hostOf(px))
		const size = 8 << 20
		rc.send("POST /upload HTTP/1.1\r\nHost: app.example\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n")
		go func() { _, _ = io.Copy(rc.c, io.LimitReader(zeros{}, size)) }() // fails once the ingress closes
		resp, body := rc.read("POST")
		if resp.StatusCode != http.StatusRequestEntityTooLarge || body != "too large\n" || !resp.Close {
			t.Errorf("raw upstream sockets %v: %d %q (close %v), want the upstream's 413 and a close", wrap, resp.StatusCode, body, resp.Close)
		}
		if !strings.Contains(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("the upstream's head was not relayed: %v", resp.Header)
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
