package main

import (
	"bytes"
	"fmt"
	"strings"
)

// special is a fixed case, at a limit or of a kind random damage does not
// make.
type special struct {
	name string
	data []byte
	link string // a symbolic link to this target instead of a file
}

// Limits of scan and serve, by default (verify.DefaultMaxSize and the
// --max-header-bytes and --max-header-fields defaults).
const (
	maxSize         = 25 << 20
	maxHeaderBytes  = 1 << 20
	maxHeaderFields = 10000
)

// specials returns the fixed cases, the first of the mutated messages.
func (mu *mutator) specials(big bool) ([]special, error) {
	first := mu.srcs[0].data // 01-ok-rsa-detached: accepted as it is
	m := parse(first)
	sp := []special{
		{name: "only-crlf", data: []byte("\r\n")},
		{name: "only-lf", data: []byte("\n\n\n")},
		{name: "nul", data: []byte{0}},
		{name: "header-only", data: bytes.TrimRight(headerOf(first), "\r\n")},
		{name: "body-only", data: append([]byte("\r\n"), m.body...)},
		{name: "no-header-end", data: bytes.ReplaceAll(first, []byte("\r\n\r\n"), []byte("\r\n"))},
		{name: "symlink-dangling", link: "does-not-exist.eml"},
		{name: "symlink-message", link: "orig-" + mu.srcs[0].name},
	}
	// Unsigned fields added up to the field limit, and one more: the
	// first is accepted, the second refused before any parser reads it.
	for _, total := range []int{maxHeaderFields, maxHeaderFields + 1} {
		c := parse(first)
		var add [][]byte
		for i := range total - len(c.fields) {
			add = append(add, fmt.Appendf(nil, "Received: by relay%d.example.net\r\n", i))
		}
		c.insert(1, add...)
		sp = append(sp, special{name: fmt.Sprintf("fields-%d", total), data: c.bytes()})
	}
	// A header just under and just over its size limit.
	for _, size := range []int{maxHeaderBytes - 1024, maxHeaderBytes + 1024} {
		c := parse(first)
		var f bytes.Buffer
		f.WriteString("X-Padding:")
		for rest := size - len(headerOf(first)); f.Len() < rest; {
			f.WriteString(" " + strings.Repeat("p", 70) + "\r\n")
		}
		c.insert(1, f.Bytes())
		sp = append(sp, special{name: fmt.Sprintf("header-%d", size), data: c.bytes()})
	}
	// Signed again after the change, to reach the checks after DKIM.
	signed := []struct {
		name string
		data []byte
	}{
		{"long-line", longLine(first)},
		{"many-parts", manyParts(1000)},
		{"nested", nested(mu, first, 40)},
	}
	for _, s := range signed {
		data, err := mu.signer.sign(s.data, sigSpec{domain: "example.com", selector: selRSA, headers: dkimHeaders})
		if err != nil {
			return nil, err
		}
		sp = append(sp, special{name: s.name, data: data})
	}
	// Many DKIM signatures that fail before one that passes.
	c := parse(first)
	sig := c.fields[c.find("DKIM-Signature")[0]]
	for range 60 {
		c.insert(0, []byte(replaceTag(string(sig), "s", "nosuch")))
	}
	sp = append(sp, special{name: "many-dkim", data: c.bytes()})
	if big {
		// One byte over the limit: refused before it is read whole.
		data := bytes.Clone(first)
		pad := []byte(strings.Repeat("x", 76) + "\r\n")
		for len(data)+len(pad) <= maxSize {
			data = append(data, pad...)
		}
		data = append(data, strings.Repeat("y", maxSize+1-len(data))...)
		sp = append(sp, special{name: "too-large", data: data})
	}
	return sp, nil
}

// longLine puts a line of a million characters in the first part.
func longLine(msg []byte) []byte {
	line := strings.Repeat("long ", 200000) + "\r\n"
	if out := editPart(msg, 0, func(p *message) { p.body = append([]byte(line), p.body...) }); out != nil {
		return out
	}
	return append(bytes.Clone(msg), line...)
}

// manyParts is a multipart/mixed message of n empty parts.
func manyParts(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: parts@example.com\r\nTo: archive@certharvest.test\r\nSubject: parts\r\n")
	b.WriteString("Date: Sun, 31 May 2026 12:00:00 +0000\r\nMessage-ID: <parts@example.com>\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: multipart/mixed; boundary=p\r\n\r\n")
	for range n {
		b.WriteString("--p\r\nContent-Type: text/plain\r\n\r\nx\r\n")
	}
	b.WriteString("--p--\r\n")
	return b.Bytes()
}

// nested forwards msg depth times, each inside the next.
func nested(mu *mutator, msg []byte, depth int) []byte {
	for range depth {
		msg = opNest(mu, msg)
	}
	return msg
}
