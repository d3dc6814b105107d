package verify

// Benchmarks of the pipeline's stages, one by one. Each stage is timed on
// the output of the stages before it, computed once outside the timed loop.
// The whole pipeline, with and without the real certificate store and log,
// is benchmarked in pipeline_bench_test.go.
//
//	go test -run '^$' -bench . -benchmem ./verify/

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// benchMessages is how many distinct messages (distinct addresses and
// signer certificates, one intermediate) the benchmarks cycle through.
const benchMessages = 64

// stageInput is one benchmark message and what each stage made of it.
type stageInput struct {
	raw    []byte
	parsed *parsedMessage
	from   string
	entity *signedEntity
	cms    *signedCMS
}

var (
	stageOnce   sync.Once
	stageFix    *testcorpus.Fixture
	stageInputs []stageInput
	stageErr    error
)

// stageFixture generates the fixture and the messages once per test binary
// and runs every stage on them once, so that each benchmark can start from
// the previous stage's output.
func stageFixture(b *testing.B) (*testcorpus.Fixture, []stageInput) {
	b.Helper()
	stageOnce.Do(func() {
		stageFix, stageErr = testcorpus.New()
		if stageErr != nil {
			return
		}
		addrs := make([]string, benchMessages)
		for i := range addrs {
			addrs[i] = testcorpus.BenchAddress(i)
		}
		msgs, err := stageFix.SignedMessages(addrs)
		if err != nil {
			stageErr = err
			return
		}
		p := stagePipeline(stageFix)
		log := &story{mu: new(sync.Mutex)}
		for _, raw := range msgs {
			in := stageInput{raw: raw}
			if in.parsed, err = parseMessage(raw, DefaultMaxSize, HeaderLimits{}); err == nil {
				if in.from, err = fromAddress(in.parsed); err == nil {
					if _, err = p.checkDKIM(context.Background(), in.parsed, in.from, log); err == nil {
						if in.entity, err = locateSignature(in.parsed, log); err == nil {
							in.cms, err = verifyCMS(in.entity, nil, log)
						}
					}
				}
			}
			if err != nil {
				stageErr = fmt.Errorf("preparing the benchmark messages: %w", err)
				return
			}
			stageInputs = append(stageInputs, in)
		}
	})
	if stageErr != nil {
		b.Fatal(stageErr)
	}
	return stageFix, stageInputs
}

func stagePipeline(f *testcorpus.Fixture) *Pipeline {
	p, err := New(Options{
		Roots: f.TrustPool(),
		LookupTXT: func(_ context.Context, name string) ([]string, error) {
			txts, err := f.LookupTXT(name)
			if err != nil {
				return nil, &net.DNSError{Err: err.Error(), Name: name, IsNotFound: true}
			}
			return txts, nil
		},
		Now: func() time.Time { return testcorpus.At },
	})
	if err != nil {
		panic(err)
	}
	return p
}

// benchStory is the story of a pipeline without a logger: it records
// nothing. The cost of the log is measured by BenchmarkPipeline.
func benchStory() *story { return &story{mu: new(sync.Mutex), id: "bench", prefix: true} }

// BenchmarkStageParse: CRLF canonicalisation, header parsing and the From
// address (stages 1 and 2).
func BenchmarkStageParse(b *testing.B) {
	_, ins := stageFixture(b)
	b.ReportAllocs()
	defer MeasureCPU(b)()
	i := 0
	for b.Loop() {
		in := &ins[i%len(ins)]
		i++
		m, err := parseMessage(in.raw, DefaultMaxSize, HeaderLimits{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fromAddress(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStageDKIM: DKIM verification and alignment (stage 3): one
// RSA-2048 verification per message.
func BenchmarkStageDKIM(b *testing.B) {
	f, ins := stageFixture(b)
	p := stagePipeline(f)
	log := benchStory()
	b.ReportAllocs()
	defer MeasureCPU(b)()
	i := 0
	for b.Loop() {
		in := &ins[i%len(ins)]
		i++
		if _, err := p.checkDKIM(context.Background(), in.parsed, in.from, log); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStageLocate: finding the S/MIME entity and decoding the CMS
// (stage 4).
func BenchmarkStageLocate(b *testing.B) {
	_, ins := stageFixture(b)
	log := benchStory()
	b.ReportAllocs()
	defer MeasureCPU(b)()
	i := 0
	for b.Loop() {
		in := &ins[i%len(ins)]
		i++
		if _, err := locateSignature(in.parsed, log); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStageCMS: parsing the CMS and verifying its signature (stage 5):
// one RSA-2048 verification per message, and the parsing of the two
// certificates it carries.
func BenchmarkStageCMS(b *testing.B) {
	_, ins := stageFixture(b)
	log := benchStory()
	var certs certCache // as in the pipeline: the intermediate parsed once
	b.ReportAllocs()
	defer MeasureCPU(b)()
	i := 0
	for b.Loop() {
		in := &ins[i%len(ins)]
		i++
		if _, err := verifyCMS(in.entity, &cmsCaches{certs: &certs}, log); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStageChain: the certificate chain and the identity check (stages
// 6 and 7). Each message has its own signer certificate; they share the
// intermediate. new: each signer seen for the first time (the chains kept
// are dropped after every round of the messages); known: a signer whose
// chain was verified before (chaincache.go).
func BenchmarkStageChain(b *testing.B) {
	for _, known := range []bool{false, true} {
		name := "new"
		if known {
			name = "known"
		}
		b.Run(name, func(b *testing.B) {
			f, ins := stageFixture(b)
			p := stagePipeline(f)
			log := benchStory()
			b.ReportAllocs()
			defer MeasureCPU(b)()
			i := 0
			for b.Loop() {
				if !known && i%len(ins) == 0 {
					ForgetSenders(p)
				}
				in := &ins[i%len(ins)]
				i++
				signer := in.cms.signers[0]
				if _, err := p.verifyChain(signer, in.cms.bag, testcorpus.At, log); err != nil {
					b.Fatal(err)
				}
				if err := checkIdentity(signer, in.from, log); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStageCertInfo: the certificate summary of the report.
func BenchmarkStageCertInfo(b *testing.B) {
	_, ins := stageFixture(b)
	b.ReportAllocs()
	defer MeasureCPU(b)()
	i := 0
	for b.Loop() {
		in := &ins[i%len(ins)]
		i++
		DescribeCertificate(in.cms.signers[0])
	}
}
