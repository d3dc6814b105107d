package verify

import "testing"

// A message of its own is identified by its bytes, as always; a message of
// an mbox by its bytes and its index, so that two copies in one mbox differ;
// NewMessageIDHash gives the same ids, a message not held whole.
func TestMessageIDForMbox(t *testing.T) {
	raw := []byte("Subject: x\r\n\r\nbody\r\n")
	plain := MessageIDFor(&Message{Raw: raw})
	if len(plain) != 12 {
		t.Errorf("id %q", plain)
	}
	first := MessageIDFor(&Message{Raw: raw, MboxIndex: 1})
	second := MessageIDFor(&Message{Raw: raw, MboxIndex: 2})
	if first == second || first == plain || second == plain {
		t.Errorf("ids %s, %s, %s: want distinct", plain, first, second)
	}
	for i, want := range map[int]string{0: plain, 1: first, 2: second} {
		h := NewMessageIDHash(i)
		h.Write(raw[:5])
		h.Write(raw[5:])
		if got := MessageIDFromHash(h); got != want {
			t.Errorf("index %d: hash gives %s, want %s", i, got, want)
		}
	}
}
