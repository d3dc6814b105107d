package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/certharvest/certharvest/internal/lookup"
)

// lookupPrefix is where the --http listener serves the lookup API
// (internal/lookup), when a lookup token is given.
const lookupPrefix = lookup.Prefix

// lookupFlags are the flags of the lookup API.
type lookupFlags struct {
	token     string
	tokenFile string
}

func (f *lookupFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.token, "lookup-token", "", "serve GET /certs/ADDRESS to this bearer `token` (prefer --lookup-token-file)")
	fs.StringVar(&f.tokenFile, "lookup-token-file", "", "read the lookup API's bearer token from `file` (surrounding white space trimmed)")
}

// load returns the lookup token, or "" when the lookup API is off.
func (f *lookupFlags) load() (string, error) {
	if f.token != "" && f.tokenFile != "" {
		return "", usagef("give --lookup-token or --lookup-token-file, not both")
	}
	if f.tokenFile == "" {
		if f.token != "" && !lookup.IsBearerToken(f.token) {
			return "", usagef("--lookup-token: want letters, digits and -._~+/ (with = at the end), as a bearer token is sent")
		}
		return f.token, nil
	}
	data, err := os.ReadFile(f.tokenFile)
	if err != nil {
		return "", fmt.Errorf("lookup token: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("lookup token file %s is empty", f.tokenFile)
	}
	if !lookup.IsBearerToken(token) {
		return "", fmt.Errorf("lookup token file %s: want letters, digits and -._~+/ (with = at the end), as a bearer token is sent", f.tokenFile)
	}
	return token, nil
}
