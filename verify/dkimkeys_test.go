package verify

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
)

func TestParseDKIMKeys(t *testing.T) {
	file := "# test keys\n\n" +
		"s1._domainkey.Example.COM\tv=DKIM1; k=rsa; p=AAAA\n" +
		"s2._domainkey.example.net.   \"v=DKIM1; k=rsa; \" \"p=BBBB\"\n"
	keys, err := ParseDKIMKeys(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if keys.Len() != 2 {
		t.Fatalf("Len = %d, want 2", keys.Len())
	}
	got, err := keys.LookupTXT(context.Background(), "s1._domainkey.example.com")
	if err != nil || len(got) != 1 || got[0] != "v=DKIM1; k=rsa; p=AAAA" {
		t.Errorf("s1 = %q, %v", got, err)
	}
	got, err = keys.LookupTXT(context.Background(), "S2._domainkey.example.net.")
	if err != nil || len(got) != 1 || got[0] != "v=DKIM1; k=rsa; p=BBBB" {
		t.Errorf("s2 = %q, %v", got, err)
	}
	_, err = keys.LookupTXT(context.Background(), "nope._domainkey.example.com")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("absent key: err = %v, want NXDOMAIN", err)
	}
	if isTemporaryDNSError(err) {
		t.Error("an absent key must be a permanent failure")
	}
}

func TestParseDKIMKeysErrors(t *testing.T) {
	for _, file := range []string{
		"no-tab-here\n",
		"example.com\tv=DKIM1; p=AAAA\n",
		"s1._domainkey.example.com \"unterminated\n",
		"s1._domainkey.example.com \"a\" junk\n",
	} {
		if _, err := ParseDKIMKeys(strings.NewReader(file)); err == nil {
			t.Errorf("ParseDKIMKeys(%q): no error", file)
		}
	}
}

func TestIsTemporaryDNSError(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&net.DNSError{IsNotFound: true}, false},
		{&net.DNSError{IsTimeout: true}, true},
		{&net.DNSError{IsTemporary: true}, true},
		{context.DeadlineExceeded, true},
		{errors.New("other"), false},
	}
	for _, tt := range tests {
		if got := isTemporaryDNSError(tt.err); got != tt.want {
			t.Errorf("isTemporaryDNSError(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestIsKeyName(t *testing.T) {
	for name, want := range map[string]bool{
		"s1._domainkey.example.com": true, "a.b._domainkey.example.com": true,
		"._domainkey.": false, "._domainkey.example.com": false, "s1._domainkey.": false,
		"s1..x._domainkey.example.com": false, "s1._domainkey": false, "example.com": false,
	} {
		if got := isKeyName(name); got != want {
			t.Errorf("isKeyName(%q) = %v", name, got)
		}
	}
}
