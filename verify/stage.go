package verify

import "time"

// Stage is one step of the pipeline, for timing.
type Stage int

// The stages, in pipeline order.
const (
	StageParse      Stage = iota // canonicalise and read the header
	StageFrom                    // the From address
	StageDKIM                    // DKIM, including the key lookups (DNS)
	StageLocate                  // find the S/MIME signature in the MIME tree
	StageCMS                     // parse and verify the CMS signature
	StageChain                   // certificate chains, every signer
	StageIdentity                // the certificate's address against From
	StageProfile                 // the S/MIME BR profile and zlint (profile.go)
	StageRevocation              // the chains' revocation status (--revocation)
	StageStore                   // the certificate store, its syncs included
	NumStages
)

// String returns the stage's stable name (a metrics label value).
func (s Stage) String() string {
	switch s {
	case StageParse:
		return "parse"
	case StageFrom:
		return "from"
	case StageDKIM:
		return "dkim"
	case StageLocate:
		return "locate"
	case StageCMS:
		return "cms"
	case StageChain:
		return "chain"
	case StageIdentity:
		return "identity"
	case StageProfile:
		return "profile"
	case StageRevocation:
		return "revocation"
	case StageStore:
		return "store"
	}
	return "unknown"
}

// stageClock measures the stages of one message.
type stageClock struct {
	res   *Result
	start time.Time
}

// done adds the time since the last mark to stage s.
func (c *stageClock) done(s Stage) {
	now := time.Now()
	c.res.Stages[s] += now.Sub(c.start)
	c.start = now
}
