package ingest

import (
	"io"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// What the tests of package ingest_test (the inputs against a real spool,
// which package ingest cannot import) see of package ingest's insides.

const (
	SMTPMaxRefusals      = smtpMaxRefusals
	SMTPMaxJunkCommands  = smtpMaxJunkCommands
	SMTPBusyJunkCommands = smtpBusyJunkCommands
	HealthMsgPipeline    = healthMsgPipeline
	HealthMsgWritable    = healthMsgWritable
	HealthMsgSpace       = healthMsgSpace
	HealthMsgDelivery    = healthMsgDelivery
	HealthMsgReport      = healthMsgReport
	HealthMsgStore       = healthMsgStore
	WebhookFailureHold   = webhookFailureHold
)

var LineEnding = lineEnding

// ReceivingData reports whether a connection is receiving a message's
// data.
func (s *SMTPServer) ReceivingData() bool {
	for _, c := range s.ln.connections() {
		c.mu.Lock()
		in := c.inData
		c.mu.Unlock()
		if in {
			return true
		}
	}
	return false
}

// SetMemoryWait changes WebhookOptions.MemoryWait.
func (h *Webhook) SetMemoryWait(d time.Duration) { h.opts.MemoryWait = d; h.in.opts.MemoryWait = d }

// Decode decodes a relay request's body (the webhook's decoder alone).
func (h *Webhook) Decode(r io.Reader, env verify.Envelope) ([]Incoming, error) {
	return h.decode(r, env)
}
