package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/internal/engine"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

const checkUsage = `Usage: certharvest check [flags] FILE

Verify one message and print its whole story, every check and its verdict,
on standard output: for finding out why a certificate was or was not
accepted. FILE - reads the message from standard input (at most
--max-size bytes, as a file). Nothing is written unless --certs (or
--store) is given.
With --json, standard output is the report line alone, one JSON document,
and the story goes to standard error.

Exit status: 0 when the message was accepted, 3 when it was rejected,
1 on an operational error, 2 on a usage error.

Examples:
  certharvest check --trust testdata/sample/trust.pem \
      --dkim-keys testdata/sample/dkim-keys.txt --at 2026-06-01T00:00:00Z \
      testdata/sample/messages/01-ok-rsa-detached.eml

  # The report line on standard output, the story on standard error:
  certharvest check --json message.eml 2>/dev/null | jq .reason

  # A message from standard input:
  certharvest check - < message.eml
`

// errRejected makes check exit with status 3.
type errRejected struct{ reason verify.Reason }

func (e errRejected) Error() string { return "rejected: " + string(e.reason) }

// checkArgs are check's flags.
type checkArgs struct {
	pipeline pipelineFlags
	certs    string
	store    storeFlags
	asJSON   bool
}

// newCheckCommand returns check's command and the flags it sets.
func newCheckCommand(stdout io.Writer) (*command, *checkArgs) {
	cmd := newCommand("check", checkUsage, stdout)
	a := &checkArgs{}
	a.pipeline.register(cmd.fs)
	cmd.fs.StringVar(&a.certs, "certs", "", "store an accepted certificate in this `folder` (default: write nothing)")
	a.store.register(cmd.fs)
	cmd.fs.BoolVar(&a.asJSON, "json", false, "print the report line alone on standard output, the story on standard error")
	return cmd, a
}

// runCheck checks the message in args[0] with the flags a; the command line
// has been read.
func runCheck(ctx context.Context, a *checkArgs, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		return usagef("want exactly one FILE, got %d", len(args))
	}
	path := args[0]
	// The story and the verdict: on standard output, unless it is for the
	// report line alone.
	story := stdout
	if a.asJSON {
		story = stderr
	}
	setup, err := a.pipeline.build(story)
	if err != nil {
		return err
	}
	defer setup.closeLog()
	store, err := a.store.openWriter(ctx, a.certs, output.CertStoreOptions{}, setup.logger)
	if err != nil {
		return err
	}
	if store != nil {
		defer store.close()
		setup.opts.Store = store.CertStore
	}
	pipeline, err := verify.New(setup.opts)
	if err != nil {
		return err
	}
	name := path
	if path == "-" {
		name = "standard input"
	}
	setup.logger.Info("checking "+name, "trust", setup.trustDesc, "dkim_keys", setup.keysDesc)
	m := &verify.Message{Path: path, Envelope: verify.Envelope{Source: "check", Received: time.Now()}}
	var res *verify.Result
	var raw []byte
	if path == "-" {
		raw, err = ingest.ReadMessage(stdin, setup.opts.MaxSize)
	} else {
		raw, err = ingest.ReadMessageFile(path, setup.opts.MaxSize)
	}
	if err != nil {
		if verify.ReasonOf(err) == verify.ReasonInternalError {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		res = engine.ReadErrorResult(m, err, pipeline.Now())
	} else {
		m.Raw = raw
		res = pipeline.Verify(ctx, m)
	}
	verdict := "REJECTED"
	if res.Accepted() {
		verdict = "ACCEPTED"
	}
	meaning := res.Reason.Meaning()
	if res.Accepted() {
		// What happened to the certificate, in words, rather than the
		// reason's "stored (see action)".
		switch res.Action {
		case "":
			meaning = "every check passed; the certificate would be stored, but without --certs nothing was written"
		case verify.ActionStored:
			meaning = "every check passed; the certificate was stored"
		case verify.ActionUnchanged:
			meaning = "every check passed; the same certificate was stored already"
		case verify.ActionKeptExisting:
			meaning = "every check passed; the stored certificate is as new or newer, and was kept"
		}
	}
	fmt.Fprintf(story, "\nverdict: %s\nreason:  %s (%s)\ndetail:  %s\n", verdict, res.Reason, meaning, res.Detail)
	if res.CertInfo != nil {
		fmt.Fprintf(story, "signer:  %s, issued by %s, %s, valid %s to %s\n", res.CertInfo.Subject, res.CertInfo.Issuer,
			res.CertInfo.Key, res.CertInfo.NotBefore.Format(time.DateOnly), res.CertInfo.NotAfter.Format(time.DateOnly))
		if p := res.CertInfo.Profile; p != "" && p != verify.ProfileNone {
			fmt.Fprintf(story, "profile: S/MIME BR %s, zlint %s\n", p, verify.DescribeFindings(res.CertInfo.Lint))
		}
	}
	if e := res.EncCertInfo; e != nil && e != res.CertInfo {
		fmt.Fprintf(story, "encrypt to: another certificate, %s, %s, valid %s to %s\n", e.Subject, e.Key,
			e.NotBefore.Format(time.DateOnly), e.NotAfter.Format(time.DateOnly))
	}
	if len(res.Capabilities) > 0 {
		fmt.Fprintf(story, "capabilities: %s\n", strings.Join(res.Capabilities, ", "))
	}
	if a.asJSON {
		line, _ := json.Marshal(output.NewRecord(m, res))
		fmt.Fprintf(stdout, "%s\n", line)
	}
	if res.Reason == verify.ReasonStoreFailed || res.Reason == verify.ReasonStoreRefused {
		return fmt.Errorf("%s", res.Detail)
	}
	if !res.Accepted() {
		return errRejected{res.Reason}
	}
	return nil
}
