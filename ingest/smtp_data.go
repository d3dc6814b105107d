package ingest

// The message of an SMTP transaction: DATA (or BDAT) received into the
// spool under a trace header, and answered 250 once durable.

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/certharvest/certharvest/verify"
	"github.com/emersion/go-smtp"
)

// Data implements smtp.Session: it reads the message (at most
// MaxMessageBytes), writes it durably into the spool, and only then answers
// 250 with the spool name (RFC 5321 §6.1: once it has answered 250, the
// server is responsible for the message).
func (ss *smtpSession) Data(r io.Reader) error {
	ss.conn.progress.Store(true)
	ss.conn.setInData(true)
	defer ss.conn.setInData(false)
	srv := ss.srv
	now := srv.opts.Now()
	// The transaction is read before the data: with BDAT (RFC 3030)
	// go-smtp runs Data in a goroutine of its own while the connection
	// reads the next chunk's command, which may be RSET.
	from, to, helo, smtputf8 := ss.from, append([]string(nil), ss.to...), ss.c.Hostname(), ss.utf8
	if len(helo) > 255 {
		helo = helo[:255]
	}
	rcpts := strings.Join(to, " ")

	// The message arrives into the spool's hands: held in memory while the
	// inputs' budget has room, it is small and its header within the caps,
	// else written to a file in tmp/ as it comes.
	w := srv.sink.NewWriter(MessageWriterOptions{Budget: srv.opts.Budget, Header: &srv.opts.HeaderLimits})
	defer w.Close()
	limit := srv.opts.MaxMessageBytes
	lr := &io.LimitedReader{R: r, N: limit + 1}
	// The trace header goes first, with the line ending of the message's
	// first line (a bare-LF message gets a bare-LF trace): that line is
	// read first. A message without header fields gets none (below).
	first, err := readFirstLine(lr, ss.conn.firstLineBuf())
	trace := ""
	if startsHeader(first) {
		trace = ss.received(now, helo, to, smtputf8, lineEnding(first))
		w.Write([]byte(trace))
	}
	w.Write(first)
	if err == nil {
		_, err = w.ReadFrom(lr)
	}
	size := w.Size() - int64(len(trace))
	var spoolErr error
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge) || err == nil && size > limit:
		return ss.refused(smtp.ErrDataTooLarge, "from", from, "to", rcpts, "limit", limit)
	case errors.Is(err, smtp.ErrTooLongLine):
		return ss.refused(errLineTooLong, "from", from, "to", rcpts)
	case w.Err() != nil:
		spoolErr = w.Err() // the spool's failure, not the sender's
	case err != nil:
		ss.log.Warn("SMTP 451 4.4.2 message transfer interrupted", "error", err, "from", from, "received", size)
		ss.conn.loggedReply(errDataAborted)
		srv.observe(errDataAborted.Code)
		return errDataAborted
	}
	if herr := w.HeaderErr(); herr != nil {
		// Spooled all the same, and reported message_malformed by the
		// pipeline: the sender never learns a verdict here.
		ss.log.Warn("SMTP message header over the cap: written to the spool as it came, for the pipeline to report",
			"from", from, "to", rcpts, "cap", capDetail(herr))
	}
	// The pipeline refuses a file larger than the limit: keep the
	// message, drop the trace. So too a message that is blank through
	// and through: the trace would make it look like one with a header
	// and no From.
	if trace != "" && spoolErr == nil && (w.Size() > limit || !w.Spilled() && !hasHeaderFields(w.Bytes()[len(trace):])) {
		spoolErr = w.DropPrefix(int64(len(trace)))
	}
	tlsUsed := "no"
	if ss.tls != nil {
		tlsUsed = "yes"
	}
	env := verify.Envelope{
		Source:       "smtp",
		EnvelopeFrom: from,
		EnvelopeTo:   to,
		RemoteAddr:   ss.conn.RemoteAddr().String(),
		Received:     now,
		Extra:        map[string]string{"helo": helo, "tls": tlsUsed, "smtp_session": ss.conn.id},
	}
	var names []string
	err = spoolErr
	if err == nil {
		names, err = srv.sink.Deliver(srv.ctx, Incoming{Writer: w, Envelope: env})
	}
	if err != nil {
		srv.spoolFailing.Store(true)
		ss.log.Error("SMTP 451 4.3.0 not queued: "+err.Error(), "from", from, "to", rcpts, "size", size)
		ss.conn.loggedReply(errSpoolUnavailable)
		srv.observe(errSpoolUnavailable.Code)
		return errSpoolUnavailable
	}
	srv.spoolFailing.Store(false)
	name := names[0]
	ss.conn.messages.Add(1)
	ss.conn.junk.Store(0)
	ss.log.Info("SMTP 250 queued as "+name, "from", from, "to", rcpts, "size", size, "helo", helo, "tls", tlsUsed)
	srv.observe(250)
	// go-smtp answers an SMTPError as given: this is how a backend chooses
	// its 250 text.
	queued := &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "queued as " + name}
	ss.conn.loggedReply(queued)
	return queued
}

// smtpFirstLineMax is the most Data reads of a message before it chooses
// the trace header's line ending: a DATA line is at most smtpMaxLineLength
// bytes, so the first line's end is in it. (A BDAT message whose first
// line is longer gets a CRLF trace.)
const smtpFirstLineMax = 4 << 10

// readFirstLine reads from r into buf until the end of the first line (or
// of r, or of buf), and returns what it read. The end of r is not an
// error.
func readFirstLine(r io.Reader, buf []byte) ([]byte, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if bytes.IndexByte(buf[n-m:n], '\n') >= 0 || errors.Is(err, io.EOF) {
			return buf[:n], nil
		}
		if err != nil {
			return buf[:n], err
		}
	}
	return buf[:n], nil
}

// startsHeader reports whether a message whose first bytes are first can
// have header fields: it does not start with the blank line that ends the
// header section (RFC 5322 §2.1), and is not empty.
func startsHeader(first []byte) bool {
	return len(first) > 0 && !bytes.HasPrefix(first, []byte("\r\n")) && first[0] != '\n'
}

// hasHeaderFields reports whether data starts with a header field rather
// than the blank line that ends the header section (RFC 5322 §2.1), and is
// not blank altogether.
func hasHeaderFields(data []byte) bool {
	return len(bytes.TrimSpace(data)) > 0 && !bytes.HasPrefix(data, []byte("\r\n")) && !bytes.HasPrefix(data, []byte("\n"))
}

// lineEnding returns the line ending of data's first line: "\n" for a bare
// LF, else "\r\n".
func lineEnding(data []byte) string {
	i := bytes.IndexByte(data, '\n')
	if i > 0 && data[i-1] != '\r' || i == 0 {
		return "\n"
	}
	return "\r\n"
}

// received returns the trace header of a message from helo to to (RFC 5321
// §4.4, RFC 5322 §3.6.7), folded, with eol line endings:
//
//	Received: from mail.example.net ([192.0.2.1])
//		by mx.example.org (certharvest) with ESMTPS (TLS 1.3 TLS_AES_128_GCM_SHA256)
//		id smtp-1a2b3c4d for <user@example.org>; Mon, 01 Jun 2026 10:00:00 +0000
//
// The for clause names the recipient only when there is one (RFC 5321
// §7.2: never disclose the other recipients). smtputf8: the transaction said
// SMTPUTF8.
func (ss *smtpSession) received(now time.Time, helo string, to []string, smtputf8 bool, eol string) string {
	var b strings.Builder
	literal := addressLiteral(ss.conn.RemoteAddr())
	from := helo
	if !validHelo(from) {
		from = "unknown"
	}
	// RFC 3848: ESMTP, ESMTPS after STARTTLS; plain SMTP after HELO is not
	// told apart from EHLO by go-smtp. RFC 6531 §4.3: UTF8SMTP, UTF8SMTPS
	// for a transaction that said SMTPUTF8.
	proto, tlsInfo := "ESMTP", ""
	if smtputf8 {
		proto = "UTF8SMTP"
	}
	if ss.tls != nil {
		proto += "S"
		tlsInfo = fmt.Sprintf(" (%s %s)", tls.VersionName(ss.tls.Version), tls.CipherSuiteName(ss.tls.CipherSuite))
	}
	fmt.Fprintf(&b, "Received: from %s (%s)%s\tby %s (certharvest) with %s%s%s\tid %s",
		from, literal, eol, ss.srv.opts.Hostname, proto, tlsInfo, eol, ss.conn.id)
	if len(to) == 1 {
		fmt.Fprintf(&b, " for <%s>", to[0])
	}
	fmt.Fprintf(&b, "; %s%s", now.Format(time.RFC1123Z), eol)
	return b.String()
}

// validHelo reports whether a HELO argument can be written in a trace
// header as is: a domain name or an address literal (RFC 5321 §4.1.3), at
// most 255 characters.
func validHelo(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		lit := strings.TrimPrefix(h[1:len(h)-1], "IPv6:")
		_, err := netip.ParseAddr(lit)
		return err == nil
	}
	for _, c := range []byte(h) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// addressLiteral formats a peer's address as an RFC 5321 §4.1.3 address
// literal: [192.0.2.1] or [IPv6:2001:db8::1].
func addressLiteral(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return "[unknown]"
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		return "[IPv6:" + ip.WithZone("").String() + "]"
	}
	return "[" + ip.String() + "]"
}
