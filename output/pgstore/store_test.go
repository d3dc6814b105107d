package pgstore

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/certharvest/certharvest/verify"
)

// The actions of the folder store, step by step, and what they leave: the
// current certificate, and the history.
func TestStoreActions(t *testing.T) {
	t.Parallel()
	s, _ := migrated(t)
	ctx := context.Background()
	addr := "bob@example.com"
	older, newer := leaf(t, addr, t0), leaf(t, addr, t0.AddDate(0, 3, 0))
	tie := leaf(t, addr, t0.AddDate(0, 3, 0)) // another key, the same NotBefore
	steps := []struct {
		name    string
		cert    *x509.Certificate
		want    verify.Action
		current *x509.Certificate
	}{
		{"first certificate is stored", older, verify.ActionStored, older},
		{"same certificate again is unchanged", older, verify.ActionUnchanged, older},
		{"newer certificate replaces it", newer, verify.ActionStored, newer},
		{"older certificate replayed is kept out", older, verify.ActionKeptExisting, newer},
		{"a tie keeps the first stored", tie, verify.ActionKeptExisting, newer},
		{"newer again is unchanged", newer, verify.ActionUnchanged, newer},
	}
	for _, step := range steps {
		res, err := s.Store(ctx, addr, step.cert)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if res.Action != step.want || res.Path != "postgresql:certificates/"+addr {
			t.Errorf("%s: %+v, want action %s", step.name, res, step.want)
		}
		if (res.Bytes != 0) != (step.want == verify.ActionStored) {
			t.Errorf("%s: bytes %d", step.name, res.Bytes)
		}
		cur, err := s.Load(ctx, addr)
		if err != nil || !cur.Equal(step.current) {
			t.Errorf("%s: the current certificate is not the expected one (%v)", step.name, err)
		}
	}
	history, err := s.History(ctx, addr)
	if err != nil || len(history) != 1 || !history[0].Equal(older) {
		t.Errorf("history: %d certificates, %v; want the older one", len(history), err)
	}
	if addrs, err := s.Addresses(ctx); err != nil || !slices.Equal(addrs, []string{addr}) {
		t.Errorf("Addresses = %q, %v", addrs, err)
	}
	if _, err := s.Load(ctx, "nobody@example.com"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of an address without a certificate: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Store(ctx, "Bob@Example.com", newer); !errors.Is(err, verify.ErrInvalidAddress) {
		t.Errorf("an address not normalised: %v", err)
	}
	// The columns describe the certificate as the report does.
	info := verify.DescribeCertificate(newer)
	var sha, subject, issuer, serial, key string
	var message *string
	err = s.pool.QueryRow(ctx, `SELECT sha256, subject, issuer, serial, key_type, message_id
		FROM certificates WHERE address = $1`, addr).Scan(&sha, &subject, &issuer, &serial, &key, &message)
	if err != nil {
		t.Fatal(err)
	}
	if sha != info.SHA256 || subject != info.Subject || issuer != info.Issuer || serial != info.Serial || key != info.Key || message != nil {
		t.Errorf("row: %s %q %q %s %s %v; want %+v and no message", sha, subject, issuer, serial, key, message, info)
	}
}

// Two instances (two pools) and many workers race on a few addresses, each
// given an older and a newer certificate in a random order, and on one
// address with two certificates of one NotBefore: every address ends with
// its newer certificate, and the older in its history or nowhere (if it
// came after the newer); of the tie, the one stored first stays, and only
// it was ever stored, whatever the order.
func TestStoreRace(t *testing.T) {
	t.Parallel()
	a, url := migrated(t)
	b := open(t, url)
	ctx := context.Background()
	var addrs []string
	certs := map[string][2]*x509.Certificate{}
	for i := range 6 {
		addr := fmt.Sprintf("racer%d@example.com", i)
		addrs = append(addrs, addr)
		certs[addr] = [2]*x509.Certificate{leaf(t, addr, t0), leaf(t, addr, t0.AddDate(0, 1, 0))}
	}
	tieAddr := "tie@example.com"
	ties := [2]*x509.Certificate{leaf(t, tieAddr, t0), leaf(t, tieAddr, t0)}
	addrs = append(addrs, tieAddr)
	certs[tieAddr] = ties

	var mu sync.Mutex
	tieStored := map[*x509.Certificate]int{}
	var wg sync.WaitGroup
	for w := range 16 {
		store := a
		if w%2 == 1 {
			store = b
		}
		wg.Go(func() {
			for _, k := range rand.Perm(2 * len(addrs)) {
				addr := addrs[k/2]
				c := certs[addr][(k+w)%2]
				res, err := store.Store(ctx, addr, c)
				if err != nil {
					t.Error(err)
					return
				}
				if addr == tieAddr && res.Action == verify.ActionStored {
					mu.Lock()
					tieStored[c]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for _, addr := range addrs[:len(addrs)-1] {
		older, newer := certs[addr][0], certs[addr][1]
		if cur, err := b.Load(ctx, addr); err != nil || !cur.Equal(newer) {
			t.Errorf("%s: the newer certificate is not current (%v)", addr, err)
		}
		history, err := a.History(ctx, addr)
		if err != nil || len(history) > 1 || len(history) == 1 && !history[0].Equal(older) {
			t.Errorf("%s: history of %d certificates (%v), want the older or none", addr, len(history), err)
		}
	}
	if len(tieStored) != 1 {
		t.Fatalf("of the two tied certificates, %d were stored, want exactly one", len(tieStored))
	}
	for c, n := range tieStored {
		if n != 1 {
			t.Errorf("the tied certificate was stored %d times, want once", n)
		}
		if cur, err := a.Load(ctx, tieAddr); err != nil || !cur.Equal(c) {
			t.Errorf("the tie: the current certificate is not the first stored (%v)", err)
		}
	}
	if n := count(t, a, "SELECT count(*) FROM certificate_history WHERE address = $1", tieAddr); n != 0 {
		t.Errorf("the tie: %d certificates in the history", n)
	}
	ga, ra := a.group.Stats()
	gb, rb := b.group.Stats()
	t.Logf("group commit: %d transactions for %d stores that wrote or locked", ga+gb, ra+rb)
}

// Concurrent stores of new certificates share transactions.
func TestStoreGroupCommit(t *testing.T) {
	t.Parallel()
	s, _ := migrated(t)
	ctx := context.Background()
	const n = 64
	certs := make([]*x509.Certificate, n)
	for i := range certs {
		certs[i] = leaf(t, fmt.Sprintf("g%d@example.com", i), t0)
	}
	var wg sync.WaitGroup
	for i, c := range certs {
		wg.Go(func() {
			if _, err := s.Store(ctx, fmt.Sprintf("g%d@example.com", i), c); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	groups, requests := s.group.Stats()
	if requests != n || groups >= n {
		t.Errorf("%d stores in %d transactions, want %d stores in fewer", requests, groups, n)
	}
	if got := count(t, s, "SELECT count(*) FROM certificates"); got != n {
		t.Errorf("%d rows, want %d", got, n)
	}
}

// A group whose transaction fails for one request's sake (here an address
// too long for a constraint an operator added) stores the others one by
// one: they do not fail with it.
func TestStoreGroupOneBad(t *testing.T) {
	t.Parallel()
	s, _ := migrated(t)
	ctx := context.Background()
	if _, err := s.pool.Exec(ctx, "ALTER TABLE certificates ADD CONSTRAINT short CHECK (length(address) < 20)"); err != nil {
		t.Fatal(err)
	}
	good, bad := "ok@example.com", "a-rather-long-one@example.com"
	req := []*storeRequest{
		{addr: bad, set: verify.CertSet{Encryption: leaf(t, bad, t0)}},
		{addr: good, set: verify.CertSet{Encryption: leaf(t, good, t0)}},
	}
	s.commitGroup(ctx, req)
	if req[0].err == nil || req[1].err != nil || req[1].action != verify.ActionStored {
		t.Errorf("bad: %v; good: %s, %v", req[0].err, req[1].action, req[1].err)
	}
}
