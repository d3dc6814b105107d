package verify

// DKIM from a trusted Authentication-Results field (RFC 8601), for archives
// whose DKIM keys are gone: a year after delivery most senders have rotated
// their keys, the old records no longer exist, and a signature that was
// good when the mail arrived can no longer be verified. The receiving MTA
// verified it then and wrote its result in an Authentication-Results field;
// Options.TrustAuthservIDs names the MTAs whose word is taken.
//
// The word is taken only for a signature that is in the message, aligned
// with From, whose body hash still matches the body, and whose key record no
// longer exists (isKeyAbsent); never for a signature that is bad, a body
// that changed, or a key that could not be fetched this time. And only from
// the fields the trusted MTA added (trustedDKIMResults): for each trusted
// authserv-id, reading the header from the top, the first field bearing it
// starts a run of adjacent Authentication-Results fields, and only the first
// field of that run that bears the id and reports a DKIM result is read. A
// field bearing the id anywhere else — below the run, or below the MTA's own
// DKIM field inside it — is not read: the MTA adds its field above
// everything it received (RFC 8601 §2.1, a trace field), so whatever lies
// below came from the sender. docs/SECURITY.md says what the MTA must do for
// this to hold.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
)

// How DKIM was established (DKIMResult.Via).
const (
	// DKIMViaSignature: a signature verified with its key. The report
	// omits it (an empty Via), as every line did before there was another
	// way.
	DKIMViaSignature = ""
	// DKIMViaAuthResults: the signature's key no longer exists, and a
	// trusted Authentication-Results field reports that it passed.
	DKIMViaAuthResults = "authentication-results"
)

// keyAbsence records, for one message, which DKIM key names were looked up
// and found absent: no such name, no TXT record, not in the keys file. The
// lookups of a message's signatures may run concurrently (go-msgauth's
// verifier runs them so; internal/dkimfast one after the other).
type keyAbsence struct {
	mu      sync.Mutex
	present map[string]bool // lower-cased name → found (or failed otherwise) at least once
}

// note records the outcome of a lookup of name.
func (k *keyAbsence) note(name string, absent bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.present == nil {
		k.present = make(map[string]bool)
	}
	k.present[name] = k.present[name] || !absent
}

// absent reports whether every lookup of name found no key record.
func (k *keyAbsence) absent(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	present, looked := k.present[strings.ToLower(name)]
	return looked && !present
}

// isKeyAbsent reports whether a key lookup's outcome says the record does
// not exist: NXDOMAIN, no TXT record (both IsNotFound from net.Resolver),
// a name missing from the keys file, or an empty answer. A temporary
// failure, a record that exists but is unusable (revoked, malformed, too
// large) and any other error are not absence.
func isKeyAbsent(txts []string, err error) bool {
	if err == nil {
		return len(txts) == 0
	}
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound && !isTemporaryDNSError(err)
}

// keyName is the DNS name of a signature's key (RFC 6376 §3.6.2.1).
func keyName(tags map[string]string) string {
	return strings.ToLower(tags["s"] + "._domainkey." + tags["d"])
}

// arDKIM is one DKIM result of a trusted Authentication-Results field.
type arDKIM struct {
	authservID string
	value      authres.ResultValue
	// The properties that name the signature (RFC 8601 §2.7.1, RFC 6008);
	// "" when absent.
	d, i, s, b string
}

// trustedDKIMResults returns the DKIM results of the fields the trusted
// authserv-ids added, by the rule in the comment at the top of this file,
// in header order.
func trustedDKIMResults(h *textproto.Header, trusted []string, log *story) []arDKIM {
	type field struct {
		ar      bool   // an Authentication-Results field
		id      string // its authserv-id, lower-cased; "" when unparsed
		results []arDKIM
		err     error
	}
	var fields []field
	for fs := h.Fields(); fs.Next(); {
		if !strings.EqualFold(fs.Key(), "Authentication-Results") {
			fields = append(fields, field{})
			continue
		}
		id, results, err := parseAuthResults(fs.Value())
		fields = append(fields, field{ar: true, id: id, results: results, err: err})
	}
	var out []arDKIM
	for _, want := range trusted {
		want = strings.ToLower(want)
		start := slices.IndexFunc(fields, func(f field) bool { return f.ar && f.id == want })
		if start < 0 {
			continue
		}
		for _, f := range fields[start:] {
			if !f.ar {
				break // the end of the run
			}
			if f.id != want {
				continue
			}
			if f.err != nil {
				// Its results cannot be told: nothing below it is read
				// for this id either.
				log.Info("Authentication-Results: a field of a trusted authserv-id cannot be read", "authserv_id", want, "error", f.err)
				break
			}
			if len(f.results) > 0 {
				out = append(out, f.results...)
				break
			}
		}
	}
	return out
}

// parseAuthResults parses an Authentication-Results field's value with
// go-msgauth's authres, and returns its lower-cased authserv-id and its DKIM
// results. authres splits the value at every semicolon and keeps comments
// and quotes, so the value is first made plain (plainAuthResults); it also
// drops header.s and header.b, which are read from the same parts.
func parseAuthResults(value string) (string, []arDKIM, error) {
	plain := plainAuthResults(value)
	id, results, err := authres.Parse(plain)
	if err != nil {
		return strings.ToLower(id), nil, err
	}
	id = strings.ToLower(id)
	// authres returns one result per part after the authserv-id that is
	// neither empty nor "none", in order.
	var parts []string
	for _, part := range strings.Split(plain, ";")[1:] {
		if f := strings.Fields(part); len(f) > 0 && f[0] != "none" {
			parts = append(parts, part)
		}
	}
	if len(parts) != len(results) {
		return id, nil, errors.New("authres: results and parts do not match")
	}
	var out []arDKIM
	for n, r := range results {
		r, ok := r.(*authres.DKIMResult)
		if !ok {
			continue
		}
		d := arDKIM{authservID: id, value: r.Value, d: r.Domain, i: r.Identifier}
		for _, kv := range strings.Fields(parts[n])[1:] {
			k, v, _ := strings.Cut(kv, "=")
			switch strings.ToLower(k) {
			case "header.s":
				d.s = v
			case "header.b":
				d.b = v
			}
		}
		out = append(out, d)
	}
	return id, out, nil
}

// plainAuthResults returns an Authentication-Results value without its
// comments (CFWS, RFC 5322 §3.2.2, nested) and with each quoted string
// replaced by its content, in which semicolons, spaces, parentheses and
// equals signs become underscores: what authres's split can read. The
// properties that matter here (domains, selectors, base64 signature
// prefixes) hold none of those characters.
func plainAuthResults(v string) string {
	var b strings.Builder
	b.Grow(len(v))
	depth, quoted := 0, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && (depth > 0 || quoted) && i+1 < len(v):
			i++
			if quoted {
				b.WriteByte(plainQuoted(v[i]))
			}
		case quoted:
			if c == '"' {
				quoted = false
			} else {
				b.WriteByte(plainQuoted(c))
			}
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
			if depth == 0 {
				b.WriteByte(' ')
			}
		case depth > 0:
		case c == '"':
			quoted = true
		case c == '\r' || c == '\n':
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func plainQuoted(c byte) byte {
	switch c {
	case ';', ' ', '\t', '(', ')', '=', '\r', '\n':
		return '_'
	}
	return c
}

// refersTo reports whether a result names the signature with tags t: its
// header.d is the signature's d=, its header.i the signature's identity
// (i=, or "@" and d=), its header.s the selector, its header.b a prefix of
// the signature's b=, for each of them it gives; and it gives header.d or
// header.i.
func (r arDKIM) refersTo(t map[string]string) bool {
	if r.d == "" && r.i == "" {
		return false
	}
	if r.d != "" && !strings.EqualFold(r.d, t["d"]) {
		return false
	}
	if r.i != "" {
		auid := t["i"]
		if auid == "" {
			auid = "@" + t["d"]
		}
		if !strings.EqualFold(r.i, auid) {
			return false
		}
	}
	if r.s != "" && !strings.EqualFold(r.s, t["s"]) {
		return false
	}
	return r.b == "" || strings.HasPrefix(t["b"], r.b)
}

// dkimFromAuthResults looks, among the signatures gone (indexes into tags:
// aligned with From, failed because their key record no longer exists),
// for one that the trusted fields report as passed: some trusted result
// naming it says pass, none says otherwise, and its body hash still matches
// the body (bodyIntact). The first such signature, in header order, is the
// result; nil when there is none.
func (p *Pipeline) dkimFromAuthResults(m *parsedMessage, tags []map[string]string, gone []int, log *story) *DKIMResult {
	results := trustedDKIMResults(&m.header, p.opts.TrustAuthservIDs, log)
	var passed []int
	for _, i := range gone {
		pass, other := "", false
		for _, r := range results {
			if !r.refersTo(tags[i]) {
				continue
			}
			if r.value == authres.ResultPass {
				pass = cmp.Or(pass, r.authservID)
			} else {
				other = true
			}
		}
		if other {
			log.Info("Authentication-Results: trusted results for the signature disagree; not relied on", "domain", tags[i]["d"], "selector", tags[i]["s"])
			continue
		}
		if pass != "" {
			passed = append(passed, i)
		}
	}
	if len(passed) == 0 {
		return nil
	}
	intact := p.bodyIntact(m, tags, passed)
	for _, i := range passed {
		t := tags[i]
		if !intact[i] {
			log.Info("Authentication-Results: passed on delivery, but the signature's body hash or tags fail now; not relied on", "domain", t["d"], "selector", t["s"])
			continue
		}
		var id string
		for _, r := range results {
			if r.refersTo(t) {
				id = r.authservID
				break
			}
		}
		log.Info("DKIM passed on delivery, by the Authentication-Results of "+id+"; the key no longer exists", "domain", strings.ToLower(t["d"]), "selector", t["s"])
		return &DKIMResult{Domain: strings.ToLower(t["d"]), Selector: t["s"], Via: DKIMViaAuthResults, AuthservID: id, b: t["b"]}
	}
	return nil
}

// placeholderRSAKey is an RSA-2048 public key whose private key nobody
// kept: the stand-in for a key that no longer exists, so that go-msgauth
// checks everything of a signature up to its cryptographic verification
// (which then fails).
const placeholderRSAKey = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAz0fdWkS18aHLPBrMIwAj5I7To2bY5RJBiGFjCRDQKKYV43ncFvogEcyWaACmE3jhuVeKdgZmf2hBNzLH6Qpt2MD6ERzt3Jysc81p/0YT3w6DuFbJ1UEAQ3yvQLxunt6AzFT2yD2CruHP8vOjpndtKzs05UO8AFtcYZziwCWqMnZFEW76Sh+oAGLwinEDnhuwVGJD9hQVs3YFgnyhoaeJauHd9/LdVWl1ZChyLJVoMQF8e5+Sn4vYEba3XmLK0FjUw7QyePPDWWVKjKcSE6wUeM2GKfpbdEACkd5yQ5Kl1RAph5RgYpjS6c4+XFVWFURifx+6/9a80kmITqSSTFI8WwIDAQAB"

// placeholderEd25519Key is the Ed25519 stand-in: 32 zero bytes.
const placeholderEd25519Key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

// signatureDidNotVerify starts go-msgauth's error for a signature whose
// every other check passed, the body hash included (dkim/verify.go).
const signatureDidNotVerify = "dkim: signature did not verify"

// bodyIntact verifies the message's signatures again with a placeholder
// key (of the signature's algorithm) for each of those named by which, and
// reports which of them fail only at the cryptographic check: their tags
// are acceptable and their body hash matches the body. The key of a
// signature whose record is gone cannot be had, but everything else about
// it can still be checked, by go-msgauth itself. No lookup is made.
func (p *Pipeline) bodyIntact(m *parsedMessage, tags []map[string]string, which []int) map[int]bool {
	records := make(map[string]string, len(which))
	for _, i := range which {
		switch algo, _, _ := strings.Cut(tags[i]["a"], "-"); strings.ToLower(algo) {
		case "rsa":
			records[keyName(tags[i])] = "v=DKIM1; k=rsa; p=" + placeholderRSAKey
		case "ed25519":
			records[keyName(tags[i])] = "v=DKIM1; k=ed25519; p=" + placeholderEd25519Key
		}
	}
	opts := &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if rec, ok := records[strings.ToLower(strings.TrimSuffix(name, "."))]; ok {
				return []string{rec}, nil
			}
			return nil, &net.DNSError{Err: "not looked up", Name: name, IsNotFound: true}
		},
		MaxVerifications: p.opts.MaxDKIMVerifications,
	}
	verifications, _ := dkim.VerifyWithOptions(bytes.NewReader(m.canonical), opts)
	intact := make(map[int]bool, len(which))
	for _, i := range which {
		if i < len(verifications) {
			err := verifications[i].Err
			intact[i] = err != nil && strings.HasPrefix(err.Error(), signatureDidNotVerify)
		}
	}
	return intact
}

// checkLookup wraps a key lookup for go-msgauth: a temporary failure becomes
// go-msgauth's temporary error, a key over the size limit a permanent one,
// and, when absence is not nil, whether the record exists is noted there.
func checkLookup(ctx context.Context, lookup LookupTXTFunc, absence *keyAbsence) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		txts, err := lookup(ctx, name)
		if err != nil && isTemporaryDNSError(err) {
			// go-msgauth treats a net.Error whose Temporary() is true as
			// a temporary failure, anything else as permanent.
			return nil, temporaryError{err}
		}
		if absence != nil {
			absence.note(name, isKeyAbsent(txts, err))
		}
		for _, txt := range txts {
			if err := checkDKIMKeySize(txt); err != nil {
				// Permanent: the signature fails, the key unused.
				return nil, err
			}
		}
		return txts, err
	}
}
