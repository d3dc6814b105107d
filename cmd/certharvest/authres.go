package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/certharvest/certharvest/verify"
)

// parseAuthservIDs parses --trust-authserv-id: authserv-ids separated by
// commas, each a token as a host name is; "" trusts none.
func parseAuthservIDs(s string) ([]string, error) {
	var ids []string
	for _, id := range strings.Split(s, ",") {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		if err := verify.CheckAuthservID(id); err != nil {
			return nil, err
		}
		ids = append(ids, strings.ToLower(id))
	}
	return ids, nil
}

// authservNone is the --authserv-id that turns the field off: messages are
// archived by a rename, as received, without a copy.
const authservNone = "none"

// parseAuthservID parses --authserv-id: one authserv-id, "" for the host
// name, or authservNone.
func parseAuthservID(s string) (string, error) {
	if s == "" || s == authservNone {
		return s, nil
	}
	return strings.ToLower(s), verify.CheckAuthservID(s)
}

// authservFlags are serve's flags for the Authentication-Results field it
// adds to the messages it archives.
type authservFlags struct {
	id parsedFlag[string]
}

func (f *authservFlags) register(fs *pflag.FlagSet) {
	f.id = newParsedFlag("", parseAuthservID)
	fs.Var(&f.id, "authserv-id", "`id` of the Authentication-Results field added to archived mail; none: no field")
}

// resolve returns the authserv-id serve stamps archived messages with, and
// refuses to trust it in incoming mail: a field that claims it came from
// outside (RFC 8601 §5), since serve adds its own only to what it archives.
func (f *authservFlags) resolve(trusted []string) (string, error) {
	id := f.id.value
	if id == authservNone {
		return "", nil // archived as received: nothing to refuse
	}
	if id == "" {
		host, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("--authserv-id: the host name: %w", err)
		}
		if id, err = parseAuthservID(host); err != nil {
			return "", usagef("--authserv-id: the host name cannot be one (%v): give --authserv-id", err)
		}
	}
	if slices.Contains(trusted, id) {
		return "", usagef("--trust-authserv-id %s is serve's own --authserv-id: in the mail serve receives, a field claiming it is forged; trust it in a scan of the archive", id)
	}
	return id, nil
}
