package verify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/certharvest/certharvest/verify"
)

// refusal is a store's error for a link planted in its folder, as
// output.NotRegularError: it matches verify.ReasonStoreRefused.
type refusal struct{}

func (refusal) Error() string {
	return "/certs/a@example.com.crt is a symbolic link, not a regular file"
}
func (refusal) Is(target error) bool { return target == verify.ReasonStoreRefused }

// A store that refuses a link planted in its folder gives store_refused,
// which is not temporary (no retry helps, and the sender is not at fault);
// any other store error stays store_failed, temporary.
func TestPipelineStoreRefused(t *testing.T) {
	f := testFixture(t)
	c := firstAccepted(t, f)
	for _, tc := range []struct {
		err       error
		want      verify.Reason
		temporary bool
	}{
		{fmt.Errorf("reading the current certificate: %w", refusal{}), verify.ReasonStoreRefused, false},
		{fmt.Errorf("disk full"), verify.ReasonStoreFailed, true},
	} {
		p, store := newPipeline(t, f, nil)
		store.err = tc.err
		res := p.Verify(context.Background(), &verify.Message{Raw: c.Data})
		if res.Reason != tc.want || res.Reason.Temporary() != tc.temporary || !strings.Contains(res.Detail, tc.err.Error()) {
			t.Errorf("%v: reason %s (temporary %v), detail %q; want %s", tc.err, res.Reason, res.Reason.Temporary(), res.Detail, tc.want)
		}
		if res.Accepted() || res.Action != "" {
			t.Errorf("%v: accepted, action %q", tc.err, res.Action)
		}
	}
}
