// Command gencorpus writes a certharvest test corpus to a directory.
//
//	go run ./scripts/gencorpus -out testdata/sample
//	go run ./scripts/gencorpus -bench 2000 -out /tmp/bench
//
// The out directory receives trust.pem (the trusted root), dkim-keys.txt
// (the DKIM key file), messages/*.eml and expected.tsv (header line
// "file<TAB>reason<TAB>action"; file is relative to the out directory,
// action is "-" for rejected messages). Verify the corpus at
// testcorpus.At (--at 2026-06-01T00:00:00Z).
//
// Without -bench, messages are one per case of testcorpus.Fixture.Cases,
// named NN-case-name.eml. With -bench N, they are N valid messages from
// distinct addresses (testcorpus.BenchAddress), all expected "ok"/"stored".
//
// With -cases FILE, an expected.tsv (testdata/sample's), only the cases it
// names are written, each under its name there: `make sample` refreshes the
// frozen sample's messages so, with new keys and certificates, keeping its
// cases and counts.
//
// With -senders S (and -bench N), the N messages come from S addresses,
// message i from sender i mod S, each sender signing with one certificate
// (the common case of real traffic: a sender already known). In
// expected.tsv a sender's first message is "stored" and the others
// "unchanged", the actions of a scan in file order; a concurrent scan may
// store another of them first, but stores S certificates all the same.
//
//	go run ./scripts/gencorpus -bench 20000 -senders 50 -out /var/tmp/bench-senders
//
// With -mbox, the messages are also written, in the same order, as one
// mboxrd file, corpus.mbox (every "From " line of a body quoted), for
// scan's archive benchmark; with -pad N, each -bench message's signed text
// is about N bytes longer, lines of text among which some begin "From "
// and ">From ", which an mbox must quote:
//
//	go run ./scripts/gencorpus -bench 46000 -pad 40000 -mbox -out /var/tmp/bench-mbox
//
// With -revocation URL, the -bench messages' certificates are issued by
// an intermediate CA whose certificate, as theirs, names an OCSP responder
// and CRLs at URL (URL/ocsp, URL/crl/root.crl and URL/crl/inter.crl), and
// the two CAs, certificates and keys, are written to revocation-cas.pem
// for that responder (scripts/benchocsp), for scan's benchmark with
// --revocation (scripts/bench-scan.sh, REVOCATION=soft):
//
//	go run ./scripts/gencorpus -bench 2000 -revocation http://127.0.0.1:8788 -out /tmp/bench-rev
//
// With -profile strict (or multipurpose, legacy), each -bench message's
// certificate claims that S/MIME BR profile and has what the profile
// requires (testcorpus.IssueProfileLeaf), so that the pipeline lints each:
//
//	go run ./scripts/gencorpus -bench 2000 -profile strict -out /tmp/bench-strict
//
// Keys are random, so every run produces a new corpus with the same
// verdicts.
package main

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certharvest/certharvest/ingest/mbox"
	"github.com/certharvest/certharvest/internal/testcorpus"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("gencorpus: ")
	out := flag.String("out", "", "output directory (required)")
	bench := flag.Int("bench", 0, "write this many valid messages from distinct addresses instead of the test cases")
	opaque := flag.Bool("opaque", false, "with -bench: opaque signed-data instead of multipart/signed")
	ecIssuer := flag.Bool("ec-issuer", false, "with -bench: issue the signer certificates from the ECDSA intermediate (faster)")
	asMbox := flag.Bool("mbox", false, "also write the messages as one mboxrd file, corpus.mbox")
	pad := flag.Int("pad", 0, "with -bench: make each message's signed text about this many bytes longer")
	revocation := flag.String("revocation", "", "with -bench: certificates naming an OCSP responder and CRLs at this base URL")
	only := flag.String("cases", "", "write only the cases this expected.tsv names, under its file names")
	senders := flag.Int("senders", 0, "with -bench: the messages come from this many senders, each with one certificate (0: one sender per message)")
	profile := flag.String("profile", "", "with -bench: certificates of this S/MIME BR profile (strict, multipurpose, legacy)")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 || *bench < 0 || *pad < 0 || *senders < 0 || (*senders > 0 && *bench == 0) {
		flag.Usage()
		os.Exit(2)
	}
	var names map[string]string
	if *only != "" {
		var err error
		if names, err = readCaseNames(*only); err != nil {
			log.Fatal(err)
		}
	}
	if err := run(*out, *bench, *senders, *opaque, *ecIssuer, *asMbox, *pad, *profile, *revocation, names); err != nil {
		log.Fatal(err)
	}
}

// readCaseNames reads an expected.tsv: case name -> file name in
// messages/ (NN-name.eml).
func readCaseNames(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		file, _, _ := strings.Cut(line, "\t")
		if i == 0 {
			continue // the header line
		}
		file = strings.TrimPrefix(file, "messages/")
		num, name, ok := strings.Cut(strings.TrimSuffix(file, ".eml"), "-")
		if !ok || num == "" {
			return nil, fmt.Errorf("%s: line %d: want messages/NN-name.eml", path, i+1)
		}
		names[name] = file
	}
	return names, nil
}

func run(out string, bench, senders int, opaque, ecIssuer, asMbox bool, pad int, profile, revocation string, names map[string]string) error {
	start := time.Now()
	f, err := testcorpus.New()
	if err != nil {
		return err
	}
	log.Printf("fixture generated in %v", time.Since(start).Round(time.Millisecond))

	msgDir := filepath.Join(out, "messages")
	if err := os.MkdirAll(msgDir, 0o755); err != nil {
		return err
	}
	// Drop messages of an earlier run so expected.tsv lists exactly the
	// directory's contents.
	stale, err := filepath.Glob(filepath.Join(msgDir, "*.eml"))
	if err != nil {
		return err
	}
	for _, p := range stale {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(out, "trust.pem"), f.TrustPEM(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "dkim-keys.txt"), f.KeysFile(), 0o644); err != nil {
		return err
	}

	var expected bytes.Buffer
	expected.WriteString("file\treason\taction\n")
	var mboxFile *os.File
	var mboxOut *bufio.Writer
	var mboxW *mbox.Writer
	if asMbox {
		mboxFile, err = os.Create(filepath.Join(out, "corpus.mbox"))
		if err != nil {
			return err
		}
		defer mboxFile.Close()
		mboxOut = bufio.NewWriterSize(mboxFile, 1<<20)
		mboxW = mbox.NewWriter(mboxOut, mbox.RD)
	}
	write := func(name string, data []byte, reason, action string) error {
		if action == "" {
			action = "-"
		}
		fmt.Fprintf(&expected, "messages/%s\t%s\t%s\n", name, reason, action)
		if mboxW != nil {
			if err := mboxW.Write("gencorpus@example.org", testcorpus.At, data); err != nil {
				return err
			}
		}
		return os.WriteFile(filepath.Join(msgDir, name), data, 0o644)
	}

	if bench > 0 {
		var opts []testcorpus.MessageOption
		if opaque {
			opts = append(opts, testcorpus.Opaque())
		}
		if ecIssuer {
			opts = append(opts, testcorpus.ECIssuer())
		}
		if pad > 0 {
			opts = append(opts, testcorpus.WithBody(padding(pad)))
		}
		address := testcorpus.BenchAddress
		if senders > 0 {
			leaves, err := issueLeaves(f, senders, ecIssuer)
			if err != nil {
				return err
			}
			opts = append(opts, testcorpus.WithLeaves(leaves))
			address = func(i int) string { return testcorpus.BenchAddress(i % senders) }
		}
		if profile != "" && senders > 0 {
			return fmt.Errorf("-profile and -senders cannot be combined (the senders' certificates claim no profile)")
		}
		if profile != "" {
			opts = append(opts, testcorpus.WithProfile(testcorpus.ProfileSpec{Profile: profile}))
		}
		if revocation != "" && (senders > 0 || profile != "") {
			return fmt.Errorf("-revocation cannot be combined with -senders or -profile (their certificates name no responder)")
		}
		if revocation != "" {
			opt, err := revocationCAs(f, revocation, filepath.Join(out, "revocation-cas.pem"))
			if err != nil {
				return err
			}
			opts = append(opts, opt)
		}
		t := time.Now()
		// In batches, so that a corpus of gigabytes is never held.
		const batch = 1000
		for first := 0; first < bench; first += batch {
			addrs := make([]string, min(batch, bench-first))
			for i := range addrs {
				addrs[i] = address(first + i)
			}
			msgs, err := f.SignedMessages(addrs, opts...)
			if err != nil {
				return err
			}
			for i, m := range msgs {
				action := testcorpus.ActionStored
				if senders > 0 && first+i >= senders {
					action = "unchanged"
				}
				if err := write(fmt.Sprintf("bench-%06d.eml", first+i), m, testcorpus.ReasonOK, action); err != nil {
					return err
				}
			}
		}
		log.Printf("minted %d messages in %v", bench, time.Since(t).Round(time.Millisecond))
	} else {
		written := 0
		for i, c := range f.Cases() {
			name := fmt.Sprintf("%02d-%s.eml", i+1, c.Name)
			if names != nil {
				if name = names[c.Name]; name == "" {
					continue
				}
			}
			if err := write(name, c.Data, c.Reason, c.Action); err != nil {
				return err
			}
			written++
		}
		if names != nil && written != len(names) {
			return fmt.Errorf("-cases names %d cases, the corpus has %d of them", len(names), written)
		}
	}
	if err := os.WriteFile(filepath.Join(out, "expected.tsv"), expected.Bytes(), 0o644); err != nil {
		return err
	}
	if mboxOut != nil {
		if err := mboxOut.Flush(); err != nil {
			return err
		}
		if err := mboxFile.Close(); err != nil {
			return err
		}
	}
	log.Printf("wrote %s in %v", out, time.Since(start).Round(time.Millisecond))
	return nil
}

// issueLeaves issues one signer certificate for each of the first n bench
// addresses.
func issueLeaves(f *testcorpus.Fixture, n int, ecIssuer bool) (map[string]*x509.Certificate, error) {
	leaves := make(map[string]*x509.Certificate, n)
	for i := range n {
		addr := testcorpus.BenchAddress(i)
		cert, err := f.IssueLeaf(testcorpus.LeafSpec{Address: addr, SubjectEmail: true, ECIssuer: ecIssuer})
		if err != nil {
			return nil, err
		}
		leaves[addr] = cert
	}
	return leaves, nil
}

// padding returns a text of about n bytes: numbered lines, every 40th
// beginning "From " and every 97th ">From ", which an mbox quotes.
func padding(n int) string {
	var b strings.Builder
	b.WriteString("This message is signed.\n")
	for i := 0; b.Len() < n; i++ {
		switch {
		case i%40 == 39:
			fmt.Fprintf(&b, "From the archive, line %d: a line an mbox must quote.\n", i)
		case i%97 == 96:
			fmt.Fprintf(&b, ">From the archive, line %d: quoted once more in mboxrd.\n", i)
		default:
			fmt.Fprintf(&b, "Line %d of the padding, to make the message the size of real mail.\n", i)
		}
	}
	return b.String()
}

// revocationCAs makes the intermediate of -revocation, writes both CAs'
// certificates and keys to path (root first), and returns the option that
// issues the messages' certificates from it.
func revocationCAs(f *testcorpus.Fixture, base, path string) (testcorpus.MessageOption, error) {
	base = strings.TrimSuffix(base, "/")
	inter, key, err := f.RevocationIntermediate("certharvest Bench Revocation Intermediate", base+"/ocsp", base+"/crl/root.crl")
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, ca := range []struct {
		cert *x509.Certificate
		key  any
	}{{f.Root, f.RootKey}, {inter, key}} {
		der, err := x509.MarshalPKCS8PrivateKey(ca.key)
		if err != nil {
			return nil, err
		}
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
		pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return nil, err
	}
	return testcorpus.Revocable(inter, key, base+"/ocsp", base+"/crl/inter.crl"), nil
}
