// Package dkimfast verifies the DKIM signatures (RFC 6376) of a message held
// in memory, with the verdicts of github.com/emersion/go-msgauth v0.7.0's
// dkim.VerifyWithOptions, for less CPU.
//
// It is a fork of go-msgauth's verifier (dkim/verify.go, query.go,
// header.go and canonical.go; Copyright (c) 2017 emersion, MIT licence:
// LICENSE.go-msgauth in this directory). For every input it gives what
// go-msgauth gives: the same verifications in the same order (domain,
// identifier, signed header keys, times) and the same errors, word for
// word, of the same kinds (IsTempFail and IsPermFail here answer as
// go-msgauth's do there), the same key lookups, and the same canonical
// bytes hashed. A differential fuzz test (FuzzDifferential) checks it
// against go-msgauth itself.
//
// What differs, and why (the message is already in memory, as one slice):
//
//   - The relaxed body canonicaliser (RFC 6376 §3.4.4) copies runs of
//     ordinary bytes instead of appending byte by byte, and hashes the
//     canonical body as slices of the message wherever it equals the
//     message: the whole body at once for the usual body without trailing
//     white space. go-msgauth appends every byte to a new buffer, after a
//     CRLF fixer that copies every byte once more.
//   - The simple body canonicaliser (§3.4.3) hashes the body as it is, less
//     its trailing empty lines, without copying it.
//   - The header section is split into its fields once, as substrings of
//     one copy, instead of a bufio reader, a textproto reader and a string
//     concatenation per line.
//   - The b= tag's value is removed from the signature field by a scan
//     instead of go-msgauth's regular expression `(b\s*=)[^;]+`, with the
//     same result for every string (FuzzRemoveSignature).
//   - Several signatures are verified one after the other on the same
//     body, instead of a goroutine and a pipe each; a body hash computed for
//     one canonicalisation serves every signature that uses it.
//   - The header fields a signature names (h=) are found through an index
//     of the fields by the case-folded name when a signature names many,
//     instead of a scan of every field for every name: the same fields, in
//     time linear in the header instead of its square.
//
// Everything else (tag parsing, key records, algorithms, limits) is
// go-msgauth's code, kept as it is. dkim.VerifyOptions, dkim.Verification
// and dkim.ErrTooManySignatures are go-msgauth's own types and values.
package dkimfast
