// Copyright (c) 2017 emersion; changes for certharvest. MIT licence:
// LICENSE.go-msgauth. Derived from go-msgauth v0.7.0 dkim/header.go
// (headerPicker): the same choice of fields, found through an index when a
// signature names many.

package dkimfast

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxScan bounds the names × fields a picker compares one by one; beyond
// it, it indexes the fields by their case-folded name. go-msgauth always
// compares: a signature naming 100,000 fields of a header of 10,000 fields
// cost it a billion comparisons.
const maxScan = 4096

// picker chooses the header fields a signature's h= tag names (RFC 6376
// §5.4.2), as go-msgauth's headerPicker does: for a name, the last field
// of that name not yet chosen for it, from the bottom up. Names are
// compared with strings.EqualFold after strings.TrimSpace, and what was
// chosen is counted by strings.ToLower of the name in h=.
type picker struct {
	m      *message
	picked map[string]int
}

// picker returns a picker for a signature naming n fields.
func (m *message) picker(n int) picker {
	if m.names == nil {
		m.names = make([]string, len(m.h))
		for i, kv := range m.h {
			k, _, _ := strings.Cut(kv, ":")
			m.names[i] = strings.TrimSpace(k)
		}
	}
	if m.index == nil && n*len(m.h) > maxScan {
		m.index = make(map[string][]int)
		for i := len(m.h) - 1; i >= 0; i-- {
			k := foldKey(m.names[i])
			m.index[k] = append(m.index[k], i)
		}
	}
	return picker{m: m, picked: make(map[string]int, n)}
}

// pick returns the field chosen for key, or "" when there is none.
func (p picker) pick(key string) string {
	key = strings.ToLower(key)
	at := p.picked[key]
	if p.m.index != nil {
		fields := p.m.index[foldKey(key)]
		if at >= len(fields) {
			return ""
		}
		p.picked[key]++
		return p.m.h[fields[at]]
	}
	for i := len(p.m.h) - 1; i >= 0; i-- {
		if !strings.EqualFold(p.m.names[i], key) {
			continue
		}
		if at == 0 {
			p.picked[key]++
			return p.m.h[i]
		}
		at--
	}
	return ""
}

// foldKey returns a string that two strings share exactly when
// strings.EqualFold says they are equal: each rune (an invalid byte read
// as utf8.RuneError, as EqualFold reads it) replaced by the least rune of
// its unicode.SimpleFold orbit, which EqualFold compares them by. For
// ASCII that is the upper case.
func foldKey(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToUpper(s)
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b = utf8.AppendRune(b, least)
	}
	return string(b)
}
