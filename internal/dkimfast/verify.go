// Copyright (c) 2017 emersion; changes for certharvest. MIT licence:
// LICENSE.go-msgauth. Derived from go-msgauth v0.7.0 dkim/verify.go and
// dkim/header.go: the checks, their order and their errors are theirs;
// changed are how the message is read (splitHeader), how the body and
// header are canonicalised and hashed (canonical.go, pick.go), and that
// signatures are verified one after the other, sharing body hashes.

package dkimfast

import (
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/certharvest/certharvest/internal/rsaverify"
)

type permFailError string

func (err permFailError) Error() string {
	return "dkim: " + string(err)
}

// IsPermFail reports whether an error of a Verification is a permanent
// failure, as dkim.IsPermFail does for go-msgauth's: for instance a
// missing required tag or a malformed header.
func IsPermFail(err error) bool {
	_, ok := err.(permFailError)
	return ok
}

type tempFailError string

func (err tempFailError) Error() string {
	return "dkim: " + string(err)
}

// IsTempFail reports whether an error of a Verification is a temporary
// failure, as dkim.IsTempFail does for go-msgauth's.
func IsTempFail(err error) bool {
	_, ok := err.(tempFailError)
	return ok
}

type failError string

func (err failError) Error() string {
	return "dkim: " + string(err)
}

const headerFieldName = "DKIM-Signature"

var requiredTags = [...]string{"v", "a", "b", "bh", "d", "h", "s"}

type signature struct {
	i int
	v string
}

// Verify verifies the DKIM signatures of msg, a whole message, and returns
// what dkim.VerifyWithOptions(bytes.NewReader(msg), options) returns: one
// verification per signature, in header order, with go-msgauth's errors
// (of this package's kinds: IsTempFail, IsPermFail), and at most
// options.MaxVerifications of them, with dkim.ErrTooManySignatures, when
// there are more. msg may end its lines in CRLF or bare LF, as for
// go-msgauth; CRLF is the fast case.
func Verify(msg []byte, options *dkim.VerifyOptions) ([]*dkim.Verification, error) {
	return VerifyWith(msg, options, Options{})
}

// Options are what this package adds to go-msgauth's dkim.VerifyOptions.
// The zero value verifies as go-msgauth does.
type Options struct {
	// RSA verifies the RSA signatures, keeping the moduli of the keys
	// that recur (internal/rsaverify), with crypto/rsa's verdicts and
	// errors; nil: crypto/rsa alone.
	RSA *rsaverify.Verifier
	// Keys keeps the key records parsed, by their exact text (nil:
	// parsed every time), with the same verifications and errors.
	Keys *KeyCache
}

// VerifyWith is Verify with this package's options.
func VerifyWith(msg []byte, options *dkim.VerifyOptions, more Options) ([]*dkim.Verification, error) {
	h, body, err := splitHeader(msg)
	if err != nil {
		return nil, err
	}

	// Scan header fields for signatures
	var signatures []signature
	for i, kv := range h {
		k, rest, _ := strings.Cut(kv, ":")
		if strings.EqualFold(strings.TrimSpace(k), headerFieldName) {
			signatures = append(signatures, signature{i, strings.TrimSpace(rest)})
		}
	}

	tooManySignatures := false
	if options != nil && options.MaxVerifications > 0 && len(signatures) > options.MaxVerifications {
		tooManySignatures = true
		signatures = signatures[:options.MaxVerifications]
	}

	m := &message{h: h, body: body, options: options, rsa: more.RSA, keys: more.Keys}
	verifs := make([]*dkim.Verification, len(signatures))
	for i, sig := range signatures {
		v, err := m.verify(h[sig.i], sig.v)
		v.Err = err
		verifs[i] = v
	}

	if tooManySignatures {
		return verifs, dkim.ErrTooManySignatures
	}
	return verifs, nil
}

// message is one message being verified, and what its signatures share.
type message struct {
	h       header
	body    []byte
	options *dkim.VerifyOptions
	// rsa is Options.RSA.
	rsa *rsaverify.Verifier
	// keys is Options.Keys.
	keys *KeyCache
	// bodyHashes are the SHA-256 body hashes computed so far, by
	// canonicalisation: 0 simple, 1 relaxed.
	bodyHashes [2][]byte
	// names are the fields' trimmed names, once a signature needs them;
	// index finds the fields by name when a signature names many.
	names []string
	index map[string][]int
}

// headerBufSize is the room for a signature's canonical header fields
// that needs no allocation: most take 500 to 1,000 bytes.
const headerBufSize = 2048

func (m *message) verify(sigField, sigValue string) (*dkim.Verification, error) {
	verif := new(dkim.Verification)

	params, err := parseHeaderParams(sigValue)
	if err != nil {
		return verif, permFailError("malformed signature tags: " + err.Error())
	}

	if params["v"] != "1" {
		return verif, permFailError("incompatible signature version")
	}

	verif.Domain = stripWhitespace(params["d"])

	for _, tag := range requiredTags {
		if _, ok := params[tag]; !ok {
			return verif, permFailError("signature missing required tag")
		}
	}

	if i, ok := params["i"]; ok {
		verif.Identifier = stripWhitespace(i)
		if !strings.HasSuffix(verif.Identifier, "@"+verif.Domain) && !strings.HasSuffix(verif.Identifier, "."+verif.Domain) {
			return verif, permFailError("domain mismatch")
		}
	} else {
		verif.Identifier = "@" + verif.Domain
	}

	headerKeys := parseTagList(params["h"])
	ok := false
	for _, k := range headerKeys {
		if strings.EqualFold(k, "from") {
			ok = true
			break
		}
	}
	if !ok {
		return verif, permFailError("From field not signed")
	}
	verif.HeaderKeys = headerKeys

	if timeStr, ok := params["t"]; ok {
		t, err := parseTime(timeStr)
		if err != nil {
			return verif, permFailError("malformed time: " + err.Error())
		}
		verif.Time = t
	}
	if expiresStr, ok := params["x"]; ok {
		t, err := parseTime(expiresStr)
		if err != nil {
			return verif, permFailError("malformed expiration time: " + err.Error())
		}
		verif.Expiration = t
		if time.Now().After(t) {
			return verif, permFailError("signature has expired")
		}
	}

	// Query public key
	methods := []string{queryMethodDNSTXT}
	if methodsStr, ok := params["q"]; ok {
		methods = parseTagList(methodsStr)
	}
	var res *queryResult
	for _, method := range methods {
		if method == queryMethodDNSTXT {
			var lookup txtLookupFunc
			if m.options != nil {
				lookup = m.options.LookupTXT
			}
			res, err = queryDNSTXT(verif.Domain, stripWhitespace(params["s"]), lookup, m.keys)
			break
		}
	}
	if err != nil {
		return verif, err
	} else if res == nil {
		return verif, permFailError("unsupported public key query method")
	}

	// Parse algos
	keyAlgo, hashAlgo, ok := strings.Cut(stripWhitespace(params["a"]), "-")
	if !ok {
		return verif, permFailError("malformed algorithm name")
	}

	// Check hash algo
	if res.HashAlgos != nil {
		ok := false
		for _, algo := range res.HashAlgos {
			if algo == hashAlgo {
				ok = true
				break
			}
		}
		if !ok {
			return verif, permFailError("inappropriate hash algorithm")
		}
	}
	var hash crypto.Hash
	switch hashAlgo {
	case "sha1":
		// RFC 8301 section 3.1: rsa-sha1 MUST NOT be used for signing or
		// verifying.
		return verif, permFailError(fmt.Sprintf("hash algorithm too weak: %v", hashAlgo))
	case "sha256":
		hash = crypto.SHA256
	default:
		return verif, permFailError("unsupported hash algorithm")
	}

	// Check key algo
	if res.KeyAlgo != keyAlgo {
		return verif, permFailError("inappropriate key algorithm")
	}

	if res.Services != nil {
		ok := false
		for _, s := range res.Services {
			if s == "email" {
				ok = true
				break
			}
		}
		if !ok {
			return verif, permFailError("inappropriate service")
		}
	}

	headerCan, bodyCan := parseCanonicalization(params["c"])
	if headerCan != canonicalizationSimple && headerCan != canonicalizationRelaxed {
		return verif, permFailError("unsupported header canonicalization algorithm")
	}
	if bodyCan != canonicalizationSimple && bodyCan != canonicalizationRelaxed {
		return verif, permFailError("unsupported body canonicalization algorithm")
	}

	// The body length "l" parameter is insecure, because it allows parts of
	// the message body to not be signed. Reject messages which have it set.
	if _, ok := params["l"]; ok {
		return verif, failError("message contains an insecure body length tag")
	}

	// Parse body hash and signature
	bodyHashed, err := decodeBase64String(params["bh"])
	if err != nil {
		return verif, permFailError("malformed body hash: " + err.Error())
	}
	sig, err := decodeBase64String(params["b"])
	if err != nil {
		return verif, permFailError("malformed signature: " + err.Error())
	}

	// Check body hash
	if subtle.ConstantTimeCompare(m.bodyHash(bodyCan), bodyHashed) != 1 {
		return verif, failError("body hash did not verify")
	}

	// Compute data hash
	relaxed := headerCan == canonicalizationRelaxed
	var room [headerBufSize]byte
	data := room[:0]
	p := m.picker(len(headerKeys))
	for _, key := range headerKeys {
		kv := p.pick(key)
		if kv == "" {
			// The field MAY contain names of header fields that do not exist
			// when signed; nonexistent header fields do not contribute to the
			// signature computation
			continue
		}
		data = appendCanonicalHeader(data, kv, relaxed)
	}
	mark := len(data)
	data = appendCanonicalHeader(data, removeSignature(sigField), relaxed)
	for len(data) > mark && (data[len(data)-1] == '\r' || data[len(data)-1] == '\n') {
		data = data[:len(data)-1] // strings.TrimRight(canSigField, "\r\n")
	}
	hashed := sha256.Sum256(data)

	// Check signature, an RSA key's through m.rsa. A copy of the key's
	// verifier: res may be shared.
	verifier := res.Verifier
	if v, ok := verifier.(rsaVerifier); ok {
		v.keys = m.rsa
		verifier = v
	}
	if err := verifier.Verify(hash, hashed[:], sig); err != nil {
		return verif, failError("signature did not verify: " + err.Error())
	}

	return verif, nil
}

// bodyHash returns the SHA-256 hash of the body canonicalised as can
// says, computed once per message.
func (m *message) bodyHash(can string) []byte {
	i := 0
	if can == canonicalizationRelaxed {
		i = 1
	}
	if m.bodyHashes[i] == nil {
		w := &spanWriter{h: sha256.New()}
		if i == 1 {
			relaxedBody(w, m.body)
		} else {
			simpleBody(w, m.body)
		}
		m.bodyHashes[i] = w.h.Sum(nil)
	}
	return m.bodyHashes[i]
}

// appendCanonicalHeader appends a header field in the simple (as it is) or
// relaxed canonical form.
func appendCanonicalHeader(dst []byte, kv string, relaxed bool) []byte {
	if relaxed {
		return appendRelaxedHeader(dst, kv)
	}
	return append(dst, kv...)
}

// Canonicalisation algorithms (RFC 6376 §3.4).
const (
	canonicalizationSimple  = "simple"
	canonicalizationRelaxed = "relaxed"
)

func parseHeaderParams(s string) (map[string]string, error) {
	pairs := strings.Split(s, ";")
	params := make(map[string]string)
	for _, s := range pairs {
		key, value, ok := strings.Cut(s, "=")
		if !ok {
			if strings.TrimSpace(s) == "" {
				continue
			}
			return params, errors.New("dkim: malformed header params")
		}

		trimmedKey := strings.TrimSpace(key)
		_, present := params[trimmedKey]
		if present {
			return params, errors.New("dkim: duplicate tag name")
		}
		params[trimmedKey] = strings.TrimSpace(value)
	}
	return params, nil
}

func parseTagList(s string) []string {
	tags := strings.Split(s, ":")
	for i, t := range tags {
		tags[i] = stripWhitespace(t)
	}
	return tags
}

func parseCanonicalization(s string) (headerCan, bodyCan string) {
	headerCan = canonicalizationSimple
	bodyCan = canonicalizationSimple

	cans := strings.SplitN(stripWhitespace(s), "/", 2)
	if cans[0] != "" {
		headerCan = cans[0]
	}
	if len(cans) > 1 {
		bodyCan = cans[1]
	}
	return
}

func parseTime(s string) (time.Time, error) {
	sec, err := strconv.ParseInt(stripWhitespace(s), 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(sec, 0), nil
}

func decodeBase64String(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(stripWhitespace(s))
}

// stripWhitespace removes the characters for which unicode.IsSpace is
// true, as go-msgauth's does with strings.Map; an ASCII string, the usual
// one, is done here byte by byte, with the same result.
func stripWhitespace(s string) string {
	spaces := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return strings.Map(func(r rune) rune {
				if unicode.IsSpace(r) {
					return -1
				}
				return r
			}, s)
		}
		if isASCIISpace(c) {
			spaces++
		}
	}
	if spaces == 0 {
		return s
	}
	b := make([]byte, 0, len(s)-spaces)
	for i := 0; i < len(s); i++ {
		if !isASCIISpace(s[i]) {
			b = append(b, s[i])
		}
	}
	return string(b)
}
