package output

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/certharvest/certharvest/verify"
)

// A message of an mbox is placed by mbox_index and mbox_offset after its
// path, the offset 0 included; a message of its own has neither.
func TestRecordMboxPlace(t *testing.T) {
	res := &verify.Result{ID: "x", Reason: verify.ReasonOK}
	line := func(m *verify.Message) string {
		b, err := json.Marshal(NewRecord(m, res))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	got := line(&verify.Message{Path: "a.mbox", MboxIndex: 1, Envelope: verify.Envelope{Source: "scan"}})
	if !strings.Contains(got, `"path":"a.mbox","mbox_index":1,"mbox_offset":0,`) {
		t.Errorf("first message of an mbox: %s", got)
	}
	got = line(&verify.Message{Path: "a.mbox", MboxIndex: 7, MboxOffset: 123456, Envelope: verify.Envelope{Source: "scan"}})
	if !strings.Contains(got, `"path":"a.mbox","mbox_index":7,"mbox_offset":123456,`) {
		t.Errorf("seventh message: %s", got)
	}
	got = line(&verify.Message{Path: "a.eml", Envelope: verify.Envelope{Source: "scan"}})
	if strings.Contains(got, "mbox") {
		t.Errorf("a message of its own: %s", got)
	}
}
