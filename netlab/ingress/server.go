package ingress

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server holds the hardening of the proxy's listeners. Zero fields get the defaults
// noted; DefaultServer has them all.
//
// Slow clients: a client has ReadHeaderTimeout to send its request headers (slowloris
// is cut there) and ReadTimeout for the whole request; an idle keep-alive connection is
// closed after IdleTimeout. Each slow connection costs one goroutine and its buffers,
// not a worker, so slow clients cannot starve others. Headers are capped at
// MaxHeaderBytes (431 beyond). Malformed requests get 400 (from net/http's server for
// HTTP and HTTPS, from PlainServer's loop for Plain).
type Server struct {
	ReadHeaderTimeout time.Duration // default 5s
	ReadTimeout       time.Duration // default 60s (whole request, body included)
	WriteTimeout      time.Duration // default 120s (must exceed the upstream timeout)
	IdleTimeout       time.Duration // default 60s
	MaxHeaderBytes    int           // default 32 KiB
	// Logger receives net/http's own errors (TLS handshake failures, ...) at debug level.
	Logger *slog.Logger
}

// DefaultServer is Server with every default filled in.
var DefaultServer = Server{
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       60 * time.Second,
	WriteTimeout:      120 * time.Second,
	IdleTimeout:       60 * time.Second,
	MaxHeaderBytes:    32 << 10,
}

func (s Server) withDefaults() Server {
	d := DefaultServer
	if s.ReadHeaderTimeout <= 0 {
		s.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if s.ReadTimeout <= 0 {
		s.ReadTimeout = d.ReadTimeout
	}
	if s.WriteTimeout <= 0 {
		s.WriteTimeout = d.WriteTimeout
	}
	if s.IdleTimeout <= 0 {
		s.IdleTimeout = d.IdleTimeout
	}
	if s.MaxHeaderBytes <= 0 {
		s.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	return s
}

// HTTP returns a plain-HTTP server for h on addr (serve it with Serve(listener) or
// ListenAndServe).
func (s Server) HTTP(addr string, h http.Handler) *http.Server {
	s = s.withDefaults()
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: s.ReadHeaderTimeout,
		ReadTimeout:       s.ReadTimeout,
		WriteTimeout:      s.WriteTimeout,
		IdleTimeout:       s.IdleTimeout,
		MaxHeaderBytes:    s.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.Logger.Handler(), slog.LevelDebug),
		// The proxy finds the client's connection in the request's context (to send
		// a response's head with its spliced body, when the connection can).
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, clientConnKey{}, c)
		},
	}
}

// HTTPS returns a TLS server for h on addr with cfg (CertSelector.TLSConfig). Serve it
// with ServeTLS(listener, "", "") or ListenAndServeTLS("", ""): net/http then enables
// HTTP/2, which cfg offers in ALPN.
func (s Server) HTTPS(addr string, h http.Handler, cfg *tls.Config) *http.Server {
	srv := s.HTTP(addr, h)
	srv.TLSConfig = cfg
	return srv
}
