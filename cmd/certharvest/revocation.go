package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"github.com/certharvest/certharvest/verify"
	"github.com/certharvest/certharvest/verify/revocation"
)

// revocationFlags are --revocation, --revocation-cache and
// --revocation-timeout, which scan, check, serve and revalidate share
// (docs/REVOCATION.md). Off by default: a check is a network call per new
// certificate, which tells its CA's responder who wrote.
type revocationFlags struct {
	mode    parsedFlag[verify.RevocationMode]
	cache   string
	timeout time.Duration
}

func (f *revocationFlags) register(fs *pflag.FlagSet) {
	f.mode = newParsedFlag(string(verify.RevocationOff), verify.ParseRevocationMode)
	fs.Var(&f.mode, "revocation", "revocation `mode`: off, soft (refuse the revoked) or hard (and the unknown); OCSP, then CRLs")
	fs.StringVar(&f.cache, "revocation-cache", "", "keep revocation statuses in this `folder` (default: in memory only)")
	fs.DurationVar(&f.timeout, "revocation-timeout", revocation.DefaultFetchTimeout, "time allowed for one OCSP or CRL fetch")
}

// enabled reports whether --revocation is soft or hard.
func (f *revocationFlags) enabled() bool { return f.mode.value != verify.RevocationOff }

// checker returns the revocation checker the flags ask for, nil when
// --revocation is off.
func (f *revocationFlags) checker(log *slog.Logger) (*revocation.Checker, error) {
	if !f.enabled() {
		return nil, nil
	}
	c, err := revocation.NewChecker(f.cache, revocation.CheckerOptions{FetchTimeout: f.timeout, Logger: log})
	if err != nil {
		return nil, err
	}
	cache := "in memory"
	if f.cache != "" {
		cache = "in " + f.cache
	}
	log.Info(fmt.Sprintf("checking revocation (%s): OCSP, then CRLs; statuses kept %s", f.mode.value, cache))
	return c, nil
}

// apply sets the pipeline's revocation check from the flags.
func (f *revocationFlags) apply(opts *verify.Options, log *slog.Logger) error {
	c, err := f.checker(log)
	if err != nil || c == nil {
		return err
	}
	opts.Revocation, opts.RevocationMode = c, f.mode.value
	return nil
}
