package verify

import "testing"

func TestAligned(t *testing.T) {
	tests := []struct {
		signing, from string
		strict, relax bool
	}{
		{"example.com", "example.com", true, true},
		{"EXAMPLE.com", "example.COM", true, true},
		{"mail.example.com", "example.com", false, true},
		{"example.com", "eu.mail.example.com", false, true},
		{"example.net", "example.com", false, false},
		{"example.co.uk", "other.co.uk", false, false}, // public suffix co.uk
		{"evil-example.com", "example.com", false, false},
		{"com", "example.com", false, false},
	}
	for _, tt := range tests {
		strict := &Pipeline{opts: Options{Align: AlignStrict}}
		relaxed := &Pipeline{opts: Options{Align: AlignRelaxed}}
		if got := strict.aligned(tt.signing, tt.from); got != tt.strict {
			t.Errorf("strict aligned(%s, %s) = %v", tt.signing, tt.from, got)
		}
		if got := relaxed.aligned(tt.signing, tt.from); got != tt.relax {
			t.Errorf("relaxed aligned(%s, %s) = %v", tt.signing, tt.from, got)
		}
	}
}
