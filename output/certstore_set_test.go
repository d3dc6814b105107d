package output

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/certharvest/certharvest/verify"
)

func openMode(t *testing.T, group, named bool) (*CertStore, string) {
	t.Helper()
	dir := t.TempDir()
	store, err := OpenCertStoreOptions(dir, CertStoreOptions{GroupCommit: group})
	if err != nil {
		t.Fatal(err)
	}
	if named {
		store.temps = tempOptions{}
	}
	t.Cleanup(func() { store.Close() })
	return store, dir
}

// fileCert reads a certificate file of dir, nil when there is none.
func fileCert(t *testing.T, dir, name string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := parsePEMCertificate(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sameCert(a, b *x509.Certificate) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Equal(b)
}

// A dual-key sender's pair: <address>.crt is the certificate to encrypt
// to, <address>.sign.crt the signing one, each replaced only by a strictly
// newer one of its kind, what each replaces kept in the history once; a
// sender back to one certificate drops the signing file. In every mode of
// writing.
func TestCertStorePair(t *testing.T) {
	addr := "dual@example.com"
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(months int) *x509.Certificate { return selfSigned(t, addr, t0.AddDate(0, months, 0)) }
	single, enc1, sign1, enc2, sign2, single3 := at(0), at(1), at(1), at(2), at(3), at(4)
	steps := []struct {
		name          string
		set           verify.CertSet
		want          verify.Action
		enc, sign     *x509.Certificate // the files afterwards (sign nil: no file)
		history, caps int
	}{
		{"one certificate", verify.CertSet{Encryption: single}, verify.ActionStored, single, nil, 0, 0},
		{"a dual-key pair replaces it", verify.CertSet{Encryption: enc1, Signing: sign1, Capabilities: []string{"AES-256-GCM", "RSAES-OAEP"}},
			verify.ActionStored, enc1, sign1, 1, 2},
		{"the same pair again", verify.CertSet{Encryption: enc1, Signing: sign1}, verify.ActionUnchanged, enc1, sign1, 1, 2},
		{"the old single certificate replayed", verify.CertSet{Encryption: single}, verify.ActionKeptExisting, enc1, sign1, 1, 2},
		{"a newer signing certificate only", verify.CertSet{Encryption: enc1, Signing: sign2}, verify.ActionStored, enc1, sign2, 2, 2},
		{"a newer encryption certificate, the older signer replayed", verify.CertSet{Encryption: enc2, Signing: sign1},
			verify.ActionStored, enc2, sign2, 3, 0},
		{"the older pair replayed", verify.CertSet{Encryption: enc1, Signing: sign1}, verify.ActionKeptExisting, enc2, sign2, 3, 0},
		{"back to one certificate, newer than both", verify.CertSet{Encryption: single3, Capabilities: []string{"AES-128-CBC"}},
			verify.ActionStored, single3, nil, 5, 1},
	}
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			store, dir := openMode(t, mode.group, mode.named)
			for _, st := range steps {
				res, err := store.StoreSet(context.Background(), addr, st.set)
				if err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				if res.Action != st.want {
					t.Errorf("%s: action %s, want %s", st.name, res.Action, st.want)
				}
				if got := fileCert(t, dir, addr+".crt"); !sameCert(got, st.enc) {
					t.Errorf("%s: %s.crt holds the wrong certificate", st.name, addr)
				}
				if got := fileCert(t, dir, addr+SignSuffix); !sameCert(got, st.sign) {
					t.Errorf("%s: %s%s holds the wrong certificate (%v)", st.name, addr, SignSuffix, got != nil)
				}
				if (res.SignPath != "") != (st.sign != nil) {
					t.Errorf("%s: SignPath %q", st.name, res.SignPath)
				}
				hist, _ := store.History(addr)
				if len(hist) != st.history {
					t.Errorf("%s: %d certificates in the history, want %d", st.name, len(hist), st.history)
				}
				stored, err := store.LoadStored(addr)
				if err != nil || !sameCert(stored.Cert, st.enc) || !sameCert(stored.Signing, st.sign) || len(stored.Capabilities) != st.caps {
					t.Errorf("%s: LoadStored = %v, %d capabilities, %v", st.name, stored.Signing != nil, len(stored.Capabilities), err)
				}
			}
			// The history holds every certificate that was current, once.
			hist, _ := store.History(addr)
			for _, c := range []*x509.Certificate{single, enc1, sign1, enc2, sign2} {
				if !slices.ContainsFunc(hist, c.Equal) {
					t.Errorf("the history lacks the certificate of %s", c.NotBefore.Format(time.DateOnly))
				}
			}
			// <address>.sign.crt is no address of its own.
			if _, err := store.StoreSet(context.Background(), "x@example.com", verify.CertSet{Encryption: enc1, Signing: sign1}); err != nil {
				t.Fatal(err)
			}
			addrs, err := store.Addresses()
			if err != nil || !slices.Equal(addrs, []string{addr, "x@example.com"}) {
				t.Errorf("Addresses = %q, %v", addrs, err)
			}
			var each []string
			store.Each(context.Background(), time.Time{}, func(c StoredCertificate, err error) error {
				each = append(each, c.Address)
				return err
			})
			if !slices.Equal(each, []string{addr, "x@example.com"}) {
				t.Errorf("Each gave %q", each)
			}
			assertNoTempFiles(t, dir)
		})
	}
}

// An address whose domain ends in ".sign" would have its <address>.crt
// be another address's signing certificate file: no store keeps it
// (store_refused), and reading it finds nothing.
func TestCertStoreRefusesSignDomain(t *testing.T) {
	store, dir := openMode(t, false, true)
	owner := "alice@example.com"
	enc, sign := selfSigned(t, owner, time.Now()), selfSigned(t, owner, time.Now().Add(time.Hour))
	if _, err := store.StoreSet(context.Background(), owner, verify.CertSet{Encryption: enc, Signing: sign}); err != nil {
		t.Fatal(err)
	}
	impostor := owner + ".sign"
	_, err := store.StoreSet(context.Background(), impostor, verify.CertSet{Encryption: enc})
	if !errors.Is(err, verify.ReasonStoreRefused) {
		t.Errorf("storing %s: %v, want store_refused", impostor, err)
	}
	if _, err := store.Load(impostor); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(%s) = %v, want not found (it is %s's signing certificate)", impostor, err, owner)
	}
	if !sameCert(fileCert(t, dir, owner+SignSuffix), sign) {
		t.Error("the signing certificate was touched")
	}
}

// A signing certificate that cannot be written (a folder where it goes)
// fails the store, and <address>.crt stays as it was: the pair is written
// signing certificate first.
func TestCertStorePairFailureKeepsCertificate(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			store, dir := openMode(t, mode.group, mode.named)
			addr := "broken@example.com"
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			old := selfSigned(t, addr, t0)
			if _, err := store.Store(context.Background(), addr, old); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(dir, addr+SignSuffix), 0o755); err != nil {
				t.Fatal(err)
			}
			set := verify.CertSet{Encryption: selfSigned(t, addr, t0.AddDate(0, 1, 0)), Signing: selfSigned(t, addr, t0.AddDate(0, 1, 0))}
			if _, err := store.StoreSet(context.Background(), addr, set); err == nil {
				t.Fatal("stored over a folder")
			}
			if !sameCert(fileCert(t, dir, addr+".crt"), old) {
				t.Error("<address>.crt changed although its signing certificate could not be written")
			}
			assertNoTempFiles(t, dir)
		})
	}
}

// A crash between the files of a pair leaves each file old or new; a
// retry of the same message completes the pair. Both orders of the files
// are tried: each state a crash may leave, made by hand.
func TestCertStorePairRetryAfterCrash(t *testing.T) {
	addr := "crash@example.com"
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := selfSigned(t, addr, t0)
	enc, sign := selfSigned(t, addr, t0.AddDate(0, 1, 0)), selfSigned(t, addr, t0.AddDate(0, 1, 1))
	for _, crashed := range []struct {
		name      string
		enc, sign *x509.Certificate
	}{
		{"nothing placed", old, nil},
		{"signing certificate placed", old, sign},
		{"certificate placed, not its signing one", enc, nil},
	} {
		t.Run(crashed.name, func(t *testing.T) {
			store, dir := openMode(t, true, false)
			os.WriteFile(filepath.Join(dir, addr+".crt"), EncodeCertificatePEM(crashed.enc), 0o644)
			if crashed.sign != nil {
				os.WriteFile(filepath.Join(dir, addr+SignSuffix), EncodeCertificatePEM(crashed.sign), 0o644)
			}
			res, err := store.StoreSet(context.Background(), addr, verify.CertSet{Encryption: enc, Signing: sign})
			if err != nil || res.Action != verify.ActionStored {
				t.Fatalf("%s, %v", res.Action, err)
			}
			if !sameCert(fileCert(t, dir, addr+".crt"), enc) || !sameCert(fileCert(t, dir, addr+SignSuffix), sign) {
				t.Error("the retry did not complete the pair")
			}
			res, err = store.StoreSet(context.Background(), addr, verify.CertSet{Encryption: enc, Signing: sign})
			if err != nil || res.Action != verify.ActionUnchanged {
				t.Errorf("again: %s, %v", res.Action, err)
			}
		})
	}
}

// PlanSet decides each kind apart, and lists each retired certificate
// once.
func TestPlanSet(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := func(m int) *x509.Certificate { return selfSigned(t, "p@example.com", t0.AddDate(0, m, 0)) }
	cur := func(x *x509.Certificate) Current {
		if x == nil {
			return Current{}
		}
		return Current{Data: x.Raw, Cert: x}
	}
	a, b, d, e := c(1), c(2), c(3), c(4)
	damaged := Current{Data: []byte("not a certificate")}
	for _, tt := range []struct {
		name                string
		enc, sign           Current
		set                 verify.CertSet
		action              verify.Action
		storeEnc, storeSign bool
		dropSign            bool
		keptSign            *x509.Certificate
		retired             int
	}{
		{"new address", Current{}, Current{}, verify.CertSet{Encryption: a}, verify.ActionStored, true, false, false, nil, 0},
		{"new dual-key address", Current{}, Current{}, verify.CertSet{Encryption: a, Signing: b}, verify.ActionStored, true, true, false, b, 0},
		{"same", cur(a), Current{}, verify.CertSet{Encryption: a}, verify.ActionUnchanged, false, false, false, nil, 0},
		{"older", cur(b), Current{}, verify.CertSet{Encryption: a}, verify.ActionKeptExisting, false, false, false, nil, 0},
		{"newer signer, older encryption", cur(b), Current{}, verify.CertSet{Encryption: a, Signing: d}, verify.ActionStored, false, true, false, d, 0},
		{"newer single drops the signing file", cur(a), cur(b), verify.CertSet{Encryption: d}, verify.ActionStored, true, false, true, nil, 2},
		{"older single keeps both", cur(b), cur(d), verify.CertSet{Encryption: a}, verify.ActionKeptExisting, false, false, false, d, 0},
		{"damaged current is replaced", damaged, Current{}, verify.CertSet{Encryption: a}, verify.ActionStored, true, false, false, nil, 1},
		{"the signing certificate becomes the one to encrypt to", cur(a), cur(b), verify.CertSet{Encryption: b, Signing: e}, verify.ActionStored, true, true, false, e, 1},
	} {
		p := PlanSet(tt.enc, tt.sign, tt.set)
		if p.Action != tt.action || p.StoreEnc != tt.storeEnc || p.StoreSign != tt.storeSign || p.DropSign != tt.dropSign ||
			!sameCert(p.Sign, tt.keptSign) || len(p.Retired) != tt.retired {
			t.Errorf("%s: %+v", tt.name, p)
		}
		for _, r := range p.Retired {
			if p.Sign != nil && bytes.Equal(r.Data, p.Sign.Raw) {
				t.Errorf("%s: retires the signing certificate it keeps", tt.name)
			}
		}
	}
}
