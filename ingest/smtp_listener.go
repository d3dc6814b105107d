package ingest

// The SMTP server's listener: it caps the connections, gives each an id,
// and ends them when the server is busy or shutting down.

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// smtpListener wraps the TCP listener: it caps the connections served at
// once, in all and per client address, gives each one an id and a logger,
// and closes them on shutdown.
type smtpListener struct {
	net.Listener
	srv      *SMTPServer
	slots    chan struct{}
	draining atomic.Bool

	mu    sync.Mutex
	conns map[*smtpConn]struct{}
	perIP map[netip.Prefix]int // connections served, by clientPrefix
}

// Accept implements net.Listener. A connection beyond MaxConns, or beyond
// MaxConnsPerIP from its address, is answered 421 4.7.0 and closed here
// (RFC 5321 §3.1: a server may refuse a connection with 421), without
// reaching go-smtp.
func (l *smtpListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.evictIdle(time.Now())
		select {
		case l.slots <- struct{}{}:
		default:
			l.refuse(nc, "too many connections", "max_conns", cap(l.slots))
			continue
		}
		client := clientPrefix(nc.RemoteAddr())
		l.mu.Lock()
		if l.perIP[client] >= l.srv.opts.MaxConnsPerIP {
			l.mu.Unlock()
			<-l.slots
			l.refuse(nc, "too many connections from your address", "max_conns_per_ip", l.srv.opts.MaxConnsPerIP)
			continue
		}
		l.perIP[client]++
		now := time.Now()
		c := &smtpConn{Conn: nc, ln: l, id: newSMTPID(), opened: now, client: client, waitSince: now}
		c.log = l.srv.log.With("id", c.id)
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		c.log.Info("SMTP connection from "+nc.RemoteAddr().String(), "conns", len(l.slots))
		return c, nil
	}
}

// refuse answers a connection over a cap and closes it. A fresh socket's
// send buffer is empty, so the write does not block; the deadline makes
// sure of it.
func (l *smtpListener) refuse(nc net.Conn, why string, args ...any) {
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(nc, "421 4.7.0 %s %s, try again later\r\n", l.srv.opts.Hostname, why)
	nc.Close()
	l.srv.log.Warn("SMTP 421 4.7.0 refused connection from "+nc.RemoteAddr().String()+": "+why, args...)
	l.srv.observe(421)
}

// clientPrefix is what MaxConnsPerIP counts connections by: an IPv4
// address, or an IPv6 address's /64 (RFC 4291 §2.5.4: the interface
// identifier is the host's own to choose, so one host has them all).
func clientPrefix(a net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p
	}
	return netip.PrefixFrom(ip, ip.BitLen())
}

// busy reports whether more than half of the connection slots are taken:
// then a connection may not stay silent for long (evictIdle).
func (l *smtpListener) busy() bool { return 2*len(l.slots) > cap(l.slots) }

// evictLoop runs evictIdle every quarter of BusyIdle (within 10 ms and 1
// s) until stop is closed, so that silent connections give their slots
// back before new clients are turned away.
func (l *smtpListener) evictLoop(stop <-chan struct{}) {
	tick := time.NewTicker(min(max(l.srv.opts.BusyIdle/4, 10*time.Millisecond), time.Second))
	defer tick.Stop()
	for {
		select {
		case now := <-tick.C:
			l.evictIdle(now)
		case <-stop:
			return
		}
	}
}

// evictIdle closes, while the listener is busy, every connection that has
// waited BusyIdle or longer for its next command: go-smtp's wait ends now,
// with 421 4.4.2 (RFC 5321 §3.8), and it closes the connection. Two
// addresses with MaxConnsPerIP silent connections each, or many addresses
// with a few, hold the slots for BusyIdle, not Timeout, and cannot do it
// again without connecting again. A connection receiving a message is
// never idle; one between BDAT chunks is, as it waits for a command.
func (l *smtpListener) evictIdle(now time.Time) {
	if !l.busy() {
		return
	}
	for _, c := range l.connections() {
		if idle, ok := c.evictIfIdle(now, l.srv.opts.BusyIdle); ok {
			c.log.Warn("SMTP 421 4.4.2 closing an idle connection: the server is busy", "idle", idle.Round(time.Millisecond).String(),
				"conns", len(l.slots), "max_conns", cap(l.slots), "busy_idle", l.srv.opts.BusyIdle.String(),
				"messages", c.messages.Load())
			l.srv.observe(421)
		}
	}
}

// drain makes every idle connection's wait for a command end now (go-smtp
// then answers 421 4.4.2 and closes it); a connection in DATA is drained
// when its message is answered.
func (l *smtpListener) drain() {
	l.draining.Store(true)
	// Not under l.mu: a connection busy in its own c.mu must not hold up
	// the others' Close.
	for _, c := range l.connections() {
		c.drain()
	}
}

// closeAll closes every connection.
func (l *smtpListener) closeAll() {
	for _, c := range l.connections() {
		c.Close()
	}
}

// connections returns the open connections, for acting on each without
// holding l.mu.
func (l *smtpListener) connections() []*smtpConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	conns := make([]*smtpConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	return conns
}

// newSMTPID returns a connection id for the log: smtp- and 8 hex digits.
func newSMTPID() string {
	var b [4]byte
	rand.Read(b[:])
	return "smtp-" + hex.EncodeToString(b[:])
}
