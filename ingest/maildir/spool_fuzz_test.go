package maildir

import "testing"

// FuzzDecodeEnvelope checks that decodeEnvelope reads any context as
// encoding/json does.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, data := range envelopeSamples(f) {
		f.Add([]byte(data))
	}
	f.Fuzz(checkDecodeEnvelope)
}
