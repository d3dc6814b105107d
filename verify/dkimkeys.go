package verify

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// DKIMKeys is a fixed set of DKIM key records, read from a keys file, that
// replaces DNS: a run that uses it makes no network lookups at all.
type DKIMKeys struct {
	records map[string][]string // lower-cased name -> TXT records
}

// maxKeysFileLine bounds one line of a keys file.
const maxKeysFileLine = 64 << 10

// ParseDKIMKeys reads a keys file. Each line is a DNS name and its TXT record,
// separated by a tab or spaces:
//
//	s1._domainkey.example.com	v=DKIM1; k=rsa; p=MIIBIjANBgkq...
//
// The record may also be written as zone-file character strings, which are
// concatenated: "v=DKIM1; k=rsa; " "p=MIIB...". Blank lines and lines
// starting with # are ignored. A name listed twice has two records (which
// DKIM treats as an error, as RFC 6376 §3.6.2.2 allows).
func ParseDKIMKeys(r io.Reader) (*DKIMKeys, error) {
	keys := &DKIMKeys{records: make(map[string][]string)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxKeysFileLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			return nil, fmt.Errorf("line %d: want NAME<TAB>RECORD", n)
		}
		name := strings.ToLower(strings.TrimSuffix(line[:i], "."))
		record, err := unquoteTXT(strings.TrimSpace(line[i:]))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if !isKeyName(name) {
			return nil, fmt.Errorf("line %d: name %q is not selector._domainkey.domain", n, truncate(name, 100))
		}
		keys.records[name] = append(keys.records[name], record)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading DKIM keys: %w", err)
	}
	return keys, nil
}

// isKeyName reports whether name is selector._domainkey.domain with no
// empty label (RFC 6376 §3.6.2.1).
func isKeyName(name string) bool {
	labels := strings.Split(name, ".")
	at := -1
	for i, l := range labels {
		if l == "" {
			return false
		}
		if l == "_domainkey" && at < 0 {
			at = i
		}
	}
	return at >= 1 && at < len(labels)-1
}

// unquoteTXT turns zone-file character strings into one record; an unquoted
// value is returned as it is.
func unquoteTXT(s string) (string, error) {
	if !strings.HasPrefix(s, `"`) {
		return s, nil
	}
	var b strings.Builder
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] != '"' {
			return "", fmt.Errorf("unexpected %q between quoted strings", truncate(s, 20))
		}
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return "", fmt.Errorf("unterminated quoted string")
		}
		b.WriteString(s[1 : 1+end])
		s = s[2+end:]
	}
	return b.String(), nil
}

// Len returns the number of names in the set.
func (k *DKIMKeys) Len() int { return len(k.records) }

// LookupTXT answers from the set; an absent name is NXDOMAIN, a permanent
// failure.
func (k *DKIMKeys) LookupTXT(_ context.Context, name string) ([]string, error) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if txts, ok := k.records[name]; ok {
		return txts, nil
	}
	return nil, &net.DNSError{Err: "no such key in the DKIM keys file", Name: name, IsNotFound: true}
}

// DNSLookup returns a LookupTXTFunc that asks resolver (nil: the system
// resolver), giving each lookup at most timeout.
func DNSLookup(resolver *net.Resolver, timeout time.Duration) LookupTXTFunc {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	return func(ctx context.Context, name string) ([]string, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return resolver.LookupTXT(ctx, name)
	}
}
