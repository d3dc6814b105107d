package verify

import (
	"errors"
	"fmt"
	"testing"
)

func TestReasonsAreDocumented(t *testing.T) {
	seen := map[Reason]bool{}
	for _, r := range Reasons() {
		if seen[r] {
			t.Errorf("%s listed twice", r)
		}
		seen[r] = true
		if r.Meaning() == "" {
			t.Errorf("%s has no meaning", r)
		}
	}
	if !ReasonDKIMTempError.Temporary() || !ReasonStoreFailed.Temporary() || ReasonDKIMInvalid.Temporary() {
		t.Error("Temporary() is wrong")
	}
}

func TestReasonOf(t *testing.T) {
	err := fmt.Errorf("context: %w", fail(ReasonCertExpired, "expired"))
	if got := ReasonOf(err); got != ReasonCertExpired {
		t.Errorf("ReasonOf = %s", got)
	}
	if !errors.Is(err, ReasonCertExpired) || errors.Is(err, ReasonCertUntrusted) {
		t.Error("errors.Is does not match the reason")
	}
	if ReasonOf(nil) != ReasonOK || ReasonOf(errors.New("x")) != ReasonInternalError {
		t.Error("ReasonOf of nil or a plain error is wrong")
	}
}
