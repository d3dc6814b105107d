package verify

import (
	"testing"

	"github.com/certharvest/certharvest/internal/cputime"
)

// MeasureCPU starts measuring the CPU time of a benchmark's loop; the
// function it returns reports it as cpu-ns/op. On a shared machine the
// benchmark's ns/op (wall time) varies with the other processes' load; the
// CPU time per operation much less. In a parallel benchmark it is the CPU of
// every core per operation: cores*1e9/cpu-ns/op bounds the operations per
// second.
func MeasureCPU(b *testing.B) (stop func()) {
	start := cputime.Process()
	return func() {
		if start == 0 || b.N == 0 {
			return
		}
		b.ReportMetric(float64(cputime.Process()-start)/float64(b.N), "cpu-ns/op")
	}
}

// ForgetSenders drops what p keeps of the senders it has seen (their
// certificates and chains: leafcache.go, chaincache.go), so that a
// benchmark cycling through a few messages measures senders seen for the
// first time, the cost of keeping them included. Safe while p verifies.
func ForgetSenders(p *Pipeline) {
	p.certs.leaves.Clear()
	p.chains.verdicts.Clear()
}
