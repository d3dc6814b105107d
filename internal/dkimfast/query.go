// Copyright (c) 2017 emersion; changes for certharvest. MIT licence:
// LICENSE.go-msgauth. Copied from go-msgauth v0.7.0 dkim/query.go, with
// its errors and checks as they are; changed: the query method is a switch
// instead of a package-level map, and crypto/ed25519 is imported directly
// (golang.org/x/crypto/ed25519 is an alias of it); a key record is parsed
// through a KeyCache.

package dkimfast

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/certharvest/certharvest/internal/gencache"
	"github.com/certharvest/certharvest/internal/rsaverify"
)

type verifier interface {
	Verify(hash crypto.Hash, hashed []byte, sig []byte) error
}

type rsaVerifier struct {
	*rsa.PublicKey
	// keys verifies, keeping the moduli of keys that recur (Options.RSA);
	// nil: crypto/rsa alone, with the same verdicts and errors.
	keys *rsaverify.Verifier
}

func (v rsaVerifier) Verify(hash crypto.Hash, hashed, sig []byte) error {
	return v.keys.VerifyPKCS1v15(v.PublicKey, hash, hashed, sig)
}

type ed25519Verifier struct {
	ed25519.PublicKey
}

func (v ed25519Verifier) Verify(hash crypto.Hash, hashed, sig []byte) error {
	if !ed25519.Verify(v.PublicKey, hashed, sig) {
		return errors.New("dkim: invalid Ed25519 signature")
	}
	return nil
}

type queryResult struct {
	Verifier  verifier
	KeyAlgo   string
	HashAlgos []string
	Services  []string
}

// queryMethodDNSTXT is the only query method (RFC 6376 §3.6.2.1).
const queryMethodDNSTXT = "dns/txt"

type txtLookupFunc func(domain string) ([]string, error)

func queryDNSTXT(domain, selector string, txtLookup txtLookupFunc, keys *KeyCache) (*queryResult, error) {
	if txtLookup == nil {
		txtLookup = net.LookupTXT
	}

	txts, err := txtLookup(selector + "._domainkey." + domain)
	//lint:ignore SA1019 go-msgauth's test of a temporary failure, kept as it is (certharvest's lookups make their errors Temporary on purpose: verify.temporaryError)
	if netErr, ok := err.(net.Error); ok && netErr.Temporary() {
		return nil, tempFailError("key unavailable: " + err.Error())
	} else if err != nil {
		return nil, permFailError("no key for signature: " + err.Error())
	}

	// net.LookupTXT will concatenate strings contained in a single TXT record.
	// In other words, net.LookupTXT returns one entry per TXT record, even if
	// a record contains multiple strings.
	//
	// RFC 6376 section 3.6.2.2 says multiple TXT records lead to undefined
	// behavior, so reject that.
	switch len(txts) {
	case 0:
		return nil, permFailError("no valid key found")
	case 1:
		return keys.parse(txts[0])
	default:
		return nil, permFailError("multiple TXT records found for key")
	}
}

func parsePublicKey(s string) (*queryResult, error) {
	params, err := parseHeaderParams(s)
	if err != nil {
		return nil, permFailError("key record error: " + err.Error())
	}

	res := new(queryResult)

	if v, ok := params["v"]; ok && v != "DKIM1" {
		return nil, permFailError("incompatible public key version")
	}

	p, ok := params["p"]
	if !ok {
		return nil, permFailError("key syntax error: missing public key data")
	}
	if p == "" {
		return nil, permFailError("key revoked")
	}
	p = strings.ReplaceAll(p, " ", "")
	b, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return nil, permFailError("key syntax error: " + err.Error())
	}
	switch params["k"] {
	case "rsa", "":
		pub, err := x509.ParsePKIXPublicKey(b)
		if err != nil {
			// RFC 6376 is inconsistent about whether RSA public keys should
			// be formatted as RSAPublicKey or SubjectPublicKeyInfo.
			// Erratum 3017 (https://www.rfc-editor.org/errata/eid3017) proposes
			// allowing both.
			pub, err = x509.ParsePKCS1PublicKey(b)
			if err != nil {
				return nil, permFailError("key syntax error: " + err.Error())
			}
		}
		rsaPub, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, permFailError("key syntax error: not an RSA public key")
		}
		// RFC 8301 section 3.2: verifiers MUST NOT consider signatures using
		// RSA keys of less than 1024 bits as valid signatures.
		if rsaPub.Size()*8 < 1024 {
			return nil, permFailError(fmt.Sprintf("key is too short: want 1024 bits, has %v bits", rsaPub.Size()*8))
		}
		res.Verifier = rsaVerifier{PublicKey: rsaPub}
		res.KeyAlgo = "rsa"
	case "ed25519":
		if len(b) != ed25519.PublicKeySize {
			return nil, permFailError(fmt.Sprintf("invalid Ed25519 public key size: %v bytes", len(b)))
		}
		ed25519Pub := ed25519.PublicKey(b)
		res.Verifier = ed25519Verifier{ed25519Pub}
		res.KeyAlgo = "ed25519"
	default:
		return nil, permFailError("unsupported key algorithm")
	}

	if hashesStr, ok := params["h"]; ok {
		res.HashAlgos = parseTagList(hashesStr)
	}
	if servicesStr, ok := params["s"]; ok {
		services := parseTagList(servicesStr)

		hasWildcard := false
		for _, s := range services {
			if s == "*" {
				hasWildcard = true
				break
			}
		}
		if !hasWildcard {
			res.Services = services
		}
	}

	return res, nil
}

// keyRecordOverhead estimates what a parsed key record holds besides the
// record: an RSA-2048 key's big integers and the record's parsed tags.
const keyRecordOverhead = 1024

// KeyCache keeps DKIM key records parsed, by the record's exact text, so
// that a domain's key, the same on every message, is decoded and parsed
// (x509.ParsePKIXPublicKey) once. The record is still looked up for every
// signature: a key changed or revoked in DNS is a new text, seen at once.
// Only records that parse are kept, and a kept key is never modified, so it
// can serve every message. Bounded in records and bytes (gencache). Safe
// for concurrent use; a nil KeyCache parses every time.
type KeyCache struct {
	records *gencache.Cache[*queryResult]
}

// NewKeyCache returns a KeyCache of at most maxRecords records of at most
// maxBytes bytes (with what they are parsed into).
func NewKeyCache(maxRecords, maxBytes int) *KeyCache {
	return &KeyCache{records: gencache.New[*queryResult](maxRecords, maxBytes)}
}

// parse returns parsePublicKey(record), from the cache when it holds it.
func (kc *KeyCache) parse(record string) (*queryResult, error) {
	if kc == nil {
		return parsePublicKey(record)
	}
	if res, ok := kc.records.GetString(record); ok {
		return res, nil
	}
	res, err := parsePublicKey(record)
	if err == nil {
		kc.records.Put(record, res, 2*len(record)+keyRecordOverhead)
	}
	return res, err
}
