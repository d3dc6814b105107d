package verify_test

import (
	"context"
	"testing"

	"github.com/certharvest/certharvest/verify"
)

// idStore records the message id each Store is given in its ctx.
type idStore struct{ ids []string }

func (s *idStore) StoreSet(ctx context.Context, addr string, _ verify.CertSet) (verify.StoreResult, error) {
	s.ids = append(s.ids, verify.StoringMessage(ctx))
	return verify.StoreResult{Action: verify.ActionStored, Path: addr}, nil
}

// The store learns which message a certificate came from: the id its
// report line carries.
func TestStoringMessage(t *testing.T) {
	f := testFixture(t)
	c := firstAccepted(t, f)
	store := &idStore{}
	p, _ := newPipeline(t, f, func(o *verify.Options) { o.Store = store })
	res := p.Verify(context.Background(), &verify.Message{Raw: c.Data})
	if !res.Accepted() || len(store.ids) != 1 || store.ids[0] != res.ID || res.ID == "" {
		t.Fatalf("verdict %s; the store was given ids %q, want [%q]", res.Reason, store.ids, res.ID)
	}
	if id := verify.StoringMessage(context.Background()); id != "" {
		t.Errorf("StoringMessage outside the pipeline = %q, want empty", id)
	}
}
