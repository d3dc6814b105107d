package dkimfast

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"testing"
)

func ed25519Record(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
}

// A KeyCache gives what parsePublicKey gives, parsing a record once; a
// record of another text (a new key, a revoked one) is parsed afresh, and
// a record that does not parse is never kept.
func TestKeyCache(t *testing.T) {
	kc := NewKeyCache(16, 1<<20)
	rec := ed25519Record(t)
	first, err := kc.parse(rec)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := parsePublicKey(rec)
	if fmt.Sprint(first) != fmt.Sprint(want) {
		t.Fatalf("cached parse %+v, parsePublicKey %+v", first, want)
	}
	if again, _ := kc.parse(rec); again != first {
		t.Error("the same record was parsed again")
	}
	other := ed25519Record(t)
	if res, err := kc.parse(other); err != nil || res == first {
		t.Errorf("a new key record gave the old key: %v", err)
	}
	for _, bad := range []string{"v=DKIM1; k=rsa; p=", "v=DKIM1; p=!!!", "v=DKIM2; p=AAAA"} {
		_, wantErr := parsePublicKey(bad)
		for range 2 {
			if _, err := kc.parse(bad); err == nil || err.Error() != wantErr.Error() {
				t.Errorf("%q: %v, want %v", bad, err, wantErr)
			}
		}
		if _, ok := kc.records.GetString(bad); ok {
			t.Errorf("%q, which does not parse, was kept", bad)
		}
	}
	var none *KeyCache
	if res, err := none.parse(rec); err != nil || fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("nil KeyCache: %+v, %v", res, err)
	}
}

// Endless new key records keep a KeyCache within its bounds.
func TestKeyCacheBounded(t *testing.T) {
	kc := NewKeyCache(64, 64*(keyRecordOverhead+200))
	known := ed25519Record(t)
	kept, _ := kc.parse(known)
	for i := range 2000 {
		if _, err := kc.parse(ed25519Record(t)); err != nil {
			t.Fatal(err)
		}
		if again, _ := kc.parse(known); again != kept {
			t.Fatalf("after %d new records, the record in use was dropped", i+1)
		}
		if kc.records.Len() > 64 {
			t.Fatalf("%d records kept, bound 64", kc.records.Len())
		}
	}
}
