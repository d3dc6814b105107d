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
// Keys are random, so every run produces a new corpus with the same
// verdicts.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("gencorpus: ")
	out := flag.String("out", "", "output directory (required)")
	bench := flag.Int("bench", 0, "write this many valid messages from distinct addresses instead of the test cases")
	opaque := flag.Bool("opaque", false, "with -bench: opaque signed-data instead of multipart/signed")
	ecIssuer := flag.Bool("ec-issuer", false, "with -bench: issue the signer certificates from the ECDSA intermediate (faster)")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 || *bench < 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*out, *bench, *opaque, *ecIssuer); err != nil {
		log.Fatal(err)
	}
}

func run(out string, bench int, opaque, ecIssuer bool) error {
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
	write := func(name string, data []byte, reason, action string) error {
		if action == "" {
			action = "-"
		}
		fmt.Fprintf(&expected, "messages/%s\t%s\t%s\n", name, reason, action)
		return os.WriteFile(filepath.Join(msgDir, name), data, 0o644)
	}

	if bench > 0 {
		addrs := make([]string, bench)
		for i := range addrs {
			addrs[i] = testcorpus.BenchAddress(i)
		}
		var opts []testcorpus.MessageOption
		if opaque {
			opts = append(opts, testcorpus.Opaque())
		}
		if ecIssuer {
			opts = append(opts, testcorpus.ECIssuer())
		}
		t := time.Now()
		msgs, err := f.SignedMessages(addrs, opts...)
		if err != nil {
			return err
		}
		log.Printf("minted %d messages in %v", bench, time.Since(t).Round(time.Millisecond))
		for i, m := range msgs {
			if err := write(fmt.Sprintf("bench-%06d.eml", i), m, testcorpus.ReasonOK, testcorpus.ActionStored); err != nil {
				return err
			}
		}
	} else {
		for i, c := range f.Cases() {
			if err := write(fmt.Sprintf("%02d-%s.eml", i+1, c.Name), c.Data, c.Reason, c.Action); err != nil {
				return err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(out, "expected.tsv"), expected.Bytes(), 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s in %v", out, time.Since(start).Round(time.Millisecond))
	return nil
}
