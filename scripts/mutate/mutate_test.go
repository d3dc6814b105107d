package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

const sampleDir = "../../testdata/sample"

// The mutator's signatures verify with go-msgauth, the pipeline's DKIM
// verifier, against the keys it writes: in every form it makes, and on
// a message with bare LF line endings.
func TestSignVerifies(t *testing.T) {
	s, err := newSigner()
	if err != nil {
		t.Fatal(err)
	}
	records, err := s.keyRecords()
	if err != nil {
		t.Fatal(err)
	}
	txt := map[string][]string{}
	for _, line := range strings.Split(records, "\n") {
		name, rec, ok := strings.Cut(line, "\t")
		if ok {
			txt[name] = append(txt[name], rec)
		}
	}
	lookup := func(name string) ([]string, error) { return txt[name], nil }
	msg, err := os.ReadFile(filepath.Join(sampleDir, "messages", "01-ok-rsa-detached.eml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		spec sigSpec
		msg  []byte
	}{
		{"rsa relaxed", sigSpec{selector: selRSA}, msg},
		{"rsa simple", sigSpec{selector: selRSA, simple: true}, msg},
		{"ed25519", sigSpec{selector: selEd, ed25519: true}, msg},
		{"bare LF", sigSpec{selector: selRSA}, toLF(msg)},
		{"odd white space", sigSpec{selector: selRSA}, opTrailingWS(&mutator{r: newRand(1)}, bytes.Clone(msg))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.domain, tc.spec.headers = "example.com", dkimHeaders
			signed, err := s.sign(tc.msg, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			vs, err := dkim.VerifyWithOptions(bytes.NewReader(toCRLF(signed)), &dkim.VerifyOptions{LookupTXT: lookup})
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) == 0 || vs[0].Err != nil || vs[0].Domain != "example.com" {
				t.Fatalf("the new signature does not verify: %+v", vs[0])
			}
		})
	}
}

// Two runs with the same flags write the same files.
func TestDeterministic(t *testing.T) {
	var sets [2]map[string]string
	for i := range sets {
		out := t.TempDir()
		if err := run(filepath.Join(sampleDir, "messages"), out, filepath.Join(sampleDir, "dkim-keys.txt"), filepath.Join(out, "keys.txt"), 150, 7, false, false); err != nil {
			t.Fatal(err)
		}
		ents, err := os.ReadDir(out)
		if err != nil {
			t.Fatal(err)
		}
		sets[i] = map[string]string{}
		for _, e := range ents {
			p := filepath.Join(out, e.Name())
			if e.Type()&os.ModeSymlink != 0 {
				target, err := os.Readlink(p)
				if err != nil {
					t.Fatal(err)
				}
				sets[i][e.Name()] = "-> " + target
				continue
			}
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			sets[i][e.Name()] = string(data)
		}
	}
	if len(sets[0]) != 150+31+1 {
		t.Errorf("%d files, want 150 mutated, 31 originals and the keys", len(sets[0]))
	}
	for name, data := range sets[0] {
		if sets[1][name] != data {
			t.Errorf("%s differs between two runs (or is missing from the second)", name)
		}
	}
}
