package verify

// BenchmarkLibraryFloor measures the work no implementation of the pipeline
// on these libraries can avoid, with nothing of certharvest's around it: it
// is the floor under BenchmarkPipeline, and so under `scan`'s messages per
// second. Per message it calls
//
//   - dkimfast.Verify on the message, go-msgauth's DKIM verifier as the
//     pipeline carries it (one RSA-2048 verification, canonicalisation,
//     the key record parsed);
//   - x509.ParseCertificate of the signer's certificate;
//   - the CMS signature check: SHA-256 of the signed content and of the
//     signed attributes, one RSA-2048 verification;
//   - x509's CheckSignatureFrom of the leaf by its intermediate (one
//     RSA-2048 verification; the intermediate-to-root link is cached by the
//     pipeline, so it is not counted).
//
// The sub-benchmark rsa2048 times one rsa.VerifyPKCS1v15 alone.
// Storing the certificate durably is measured by output's CertStoreNew.
//
//	go test -run '^$' -bench LibraryFloor -cpu 1 ./verify/

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/certharvest/certharvest/internal/dkimfast"
)

// floorInput is one message, cut into what each library call takes.
type floorInput struct {
	canonical    []byte // the message with CRLF line ends
	leafDER      []byte
	intermediate *x509.Certificate
	signer       derSignerInfo
	content      []byte
}

func floorInputs(b *testing.B) ([]floorInput, func(string) ([]string, error)) {
	b.Helper()
	fix, ins := stageFixture(b)
	out := make([]floorInput, 0, len(ins))
	for _, in := range ins {
		sd, ok := parseSignedDataDER(in.entity.cms, nil)
		if !ok || len(sd.signers) != 1 {
			b.Fatal("benchmark message: not a DER CMS with one signer")
		}
		leaf := findSigner(sd.certs, &sd.signers[0])
		var inter *x509.Certificate
		for _, c := range sd.certs {
			if bytes.Equal(c.RawSubject, leaf.RawIssuer) {
				inter = c
			}
		}
		if leaf == nil || inter == nil {
			b.Fatal("benchmark message: signer or intermediate missing")
		}
		out = append(out, floorInput{
			canonical:    in.parsed.canonical,
			leafDER:      leaf.Raw,
			intermediate: inter,
			signer:       sd.signers[0],
			content:      in.entity.content,
		})
	}
	// The key records are looked up in a map, as with --dkim-keys.
	records := map[string][]string{}
	for _, in := range ins {
		name := "" // every benchmark message is signed by the same domain
		if tags := dkimSignatureTags(in.parsed); len(tags) > 0 {
			name = tags[0]["s"] + "._domainkey." + tags[0]["d"]
		}
		if _, ok := records[name]; !ok {
			txts, err := fix.LookupTXT(name)
			if err != nil {
				b.Fatal(err)
			}
			records[name] = txts
		}
	}
	lookup := func(name string) ([]string, error) { return records[name], nil }
	return out, lookup
}

func BenchmarkLibraryFloor(b *testing.B) {
	ins, lookup := floorInputs(b)
	opts := &dkim.VerifyOptions{LookupTXT: lookup}

	b.Run("rsa2048", func(b *testing.B) {
		in := ins[0]
		leaf, err := x509.ParseCertificate(in.leafDER)
		if err != nil {
			b.Fatal(err)
		}
		pub := leaf.PublicKey.(*rsa.PublicKey)
		if pub.N.BitLen() != 2048 {
			b.Fatalf("signer key has %d bits, want 2048", pub.N.BitLen())
		}
		attrs := append([]byte{0x31}, in.signer.signedAttrs[1:]...)
		digest := sha256.Sum256(attrs)
		b.ReportAllocs()
		stopCPU := MeasureCPU(b)
		for b.Loop() {
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], in.signer.signature); err != nil {
				b.Fatal(err)
			}
		}
		stopCPU()
	})

	b.Run("message", func(b *testing.B) {
		b.ReportAllocs()
		stopCPU := MeasureCPU(b)
		i := 0
		for b.Loop() {
			in := &ins[i%len(ins)]
			i++
			v, err := dkimfast.Verify(in.canonical, opts)
			if err != nil || len(v) != 1 || v[0].Err != nil {
				b.Fatalf("DKIM: %v %v", err, v)
			}
			leaf, err := x509.ParseCertificate(in.leafDER)
			if err != nil {
				b.Fatal(err)
			}
			if err := in.signer.check(nil, leaf, in.content); err != nil {
				b.Fatal(err)
			}
			if err := leaf.CheckSignatureFrom(in.intermediate); err != nil {
				b.Fatal(err)
			}
		}
		stopCPU()
	})
}
