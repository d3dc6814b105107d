package dkimfast

// BenchmarkVerify is one sample message (01-ok-rsa-detached.eml: 4,775
// bytes, one relaxed/relaxed RSA-2048 signature, as the benchmark corpus's)
// verified by go-msgauth and by Verify, with the same key lookup; their
// difference is what this package saves per message. The cpu-ns/op metric
// is the process's CPU time per operation, steadier than ns/op on a shared
// machine.
//
//	go test -run '^$' -bench Verify -count 10 ./internal/dkimfast/ | tee new.txt
//	go run golang.org/x/perf/cmd/benchstat@latest new.txt

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/certharvest/certharvest/internal/cputime"
)

func BenchmarkVerify(b *testing.B) {
	k := loadKeys(b)
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "sample", "messages", "01-ok-rsa-detached.eml"))
	if err != nil {
		b.Fatal(err)
	}
	msg := toCRLF(raw)
	opts := &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			return k.records[strings.ToLower(name)], nil
		},
		MaxVerifications: 5,
	}
	for _, tc := range []struct {
		name   string
		verify func() ([]*dkim.Verification, error)
	}{
		{"go-msgauth", func() ([]*dkim.Verification, error) { return dkim.VerifyWithOptions(bytes.NewReader(msg), opts) }},
		{"dkimfast", func() ([]*dkim.Verification, error) { return Verify(msg, opts) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			start := cputime.Process()
			for b.Loop() {
				vs, err := tc.verify()
				if err != nil || len(vs) != 1 || vs[0].Err != nil {
					b.Fatal(err, vs)
				}
			}
			b.ReportMetric(float64(cputime.Process()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}
