//go:build !(linux && go1.26 && !go1.27)

package rawio

import (
	"net"
	"time"
)

// Without a Go release whose poller entry points pollfd.go was checked against, the
// accept path stays net's (Listener wraps net's connections).
const ownAccept = false

// fdConn is not made in this build (newAcceptListener returns no listener).
type fdConn struct{}

func newFdConn(int, net.Addr, int) *fdConn { panic("rawio: no own accept path in this build") }

func (*fdConn) Control(func(uintptr)) error      { return net.ErrClosed }
func (*fdConn) Read(func(uintptr) bool) error    { return net.ErrClosed }
func (*fdConn) Write(func(uintptr) bool) error   { return net.ErrClosed }
func (*fdConn) Close() error                     { return net.ErrClosed }
func (*fdConn) CloseWrite() error                { return net.ErrClosed }
func (*fdConn) LocalAddr() net.Addr              { return nil }
func (*fdConn) RemoteAddr() net.Addr             { return nil }
func (*fdConn) LocalPort() int                   { return 0 }
func (*fdConn) SetDeadline(time.Time) error      { return net.ErrClosed }
func (*fdConn) SetReadDeadline(time.Time) error  { return net.ErrClosed }
func (*fdConn) SetWriteDeadline(time.Time) error { return net.ErrClosed }
