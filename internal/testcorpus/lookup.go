package testcorpus

import (
	"context"
	"net"
	"sync/atomic"
)

// FlakyLookupTXT returns a DKIM key lookup, with the signature of
// verify.LookupTXTFunc, that fails n times with a temporary DNS error, as a
// resolver whose server misbehaves does, then answers as LookupTXT. The
// counter it returns goes below zero once the failures are all used.
func (f *Fixture) FlakyLookupTXT(n int32) (*atomic.Int32, func(ctx context.Context, name string) ([]string, error)) {
	failures := &atomic.Int32{}
	failures.Store(n)
	return failures, func(_ context.Context, name string) ([]string, error) {
		if failures.Add(-1) >= 0 {
			return nil, &net.DNSError{Err: "server misbehaving", IsTemporary: true}
		}
		return f.LookupTXT(name)
	}
}
