package verify

import (
	"errors"
	"fmt"
)

// countCMSCertificates counts the certificates of a CMS SignedData without
// parsing them, so that a hostile bag of thousands is refused before each is
// parsed (the parser would spend seconds and hundreds of megabytes on 10,000).
// It reads BER (X.690 §8.1), definite and indefinite lengths:
//
//	ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT SignedData }
//	SignedData ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo,
//	    certificates [0] IMPLICIT CertificateSet OPTIONAL, crls [1] ..., signerInfos SET }
//
// (RFC 5652 §3, §5.1). An error means the structure is not what it expects;
// the CMS parser then gives the verdict.
func countCMSCertificates(b []byte) (int, error) {
	contentInfo, _, err := berNext(b, 0)
	if err != nil {
		return 0, err
	}
	children, err := berChildren(contentInfo, 0)
	if err != nil || len(children) < 2 || children[1].tag != 0xa0 {
		return 0, errors.New("not a ContentInfo with content")
	}
	explicit, err := berChildren(children[1], 0)
	if err != nil || len(explicit) != 1 {
		return 0, errors.New("bad [0] EXPLICIT content")
	}
	fields, err := berChildren(explicit[0], 0)
	if err != nil {
		return 0, err
	}
	for _, f := range fields {
		if f.tag == 0xa0 { // certificates [0] IMPLICIT SET OF, constructed
			certs, err := berChildren(f, 0)
			return len(certs), err
		}
	}
	return 0, nil
}

// berElement is one BER element: its identifier octet and its contents
// (for an indefinite length, up to but not including the end-of-contents).
type berElement struct {
	tag        byte
	contents   []byte
	indefinite bool
}

// maxBERDepth bounds the nesting walked to find an indefinite element's end.
const maxBERDepth = 64

// berNext reads the element at the start of b and returns it and the rest.
func berNext(b []byte, depth int) (berElement, []byte, error) {
	if depth > maxBERDepth {
		return berElement{}, nil, errors.New("BER nested too deep")
	}
	if len(b) < 2 {
		return berElement{}, nil, errors.New("BER truncated")
	}
	e := berElement{tag: b[0]}
	i := 1
	if b[0]&0x1f == 0x1f { // high tag number form: base-128 octets
		for i < len(b) && b[i]&0x80 != 0 {
			i++
		}
		i++
		if i >= len(b) || i > 6 {
			return berElement{}, nil, errors.New("BER tag too long")
		}
	}
	l := b[i]
	i++
	switch {
	case l < 0x80:
		if len(b)-i < int(l) {
			return berElement{}, nil, errors.New("BER truncated")
		}
		e.contents = b[i : i+int(l)]
		return e, b[i+int(l):], nil
	case l == 0x80:
		if b[0]&0x20 == 0 {
			return berElement{}, nil, errors.New("indefinite length on a primitive element")
		}
		e.indefinite = true
		rest := b[i:]
		start := rest
		for {
			if len(rest) >= 2 && rest[0] == 0 && rest[1] == 0 {
				e.contents = start[:len(start)-len(rest)]
				return e, rest[2:], nil
			}
			var err error
			if _, rest, err = berNext(rest, depth+1); err != nil {
				return berElement{}, nil, err
			}
		}
	default:
		n := int(l & 0x7f)
		if n > 4 || len(b)-i < n {
			return berElement{}, nil, fmt.Errorf("BER length of %d octets", n)
		}
		length := 0
		for _, c := range b[i : i+n] {
			length = length<<8 | int(c)
		}
		i += n
		if length < 0 || len(b)-i < length {
			return berElement{}, nil, errors.New("BER length past the end")
		}
		e.contents = b[i : i+length]
		return e, b[i+length:], nil
	}
}

// berChildren splits a constructed element into its elements.
func berChildren(e berElement, depth int) ([]berElement, error) {
	if e.tag&0x20 == 0 {
		return nil, errors.New("not a constructed element")
	}
	var out []berElement
	for rest := e.contents; len(rest) > 0; {
		c, r, err := berNext(rest, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		rest = r
	}
	return out, nil
}

// checkBER walks the first element of b and everything it contains, and
// reports the first way it is not well-formed BER (X.690 §8.1): a length
// past the end of its enclosing element, an indefinite length on a
// primitive element or without its end-of-contents, nesting deeper than
// maxBERDepth. Bytes after the first element are not looked at.
//
// pkcs7.Parse re-encodes its input from BER to DER first (ber2der), and
// that encoder does not keep an element inside the one that encloses it:
// where a child's length runs past its parent's end, the parent's parent
// reads the same bytes again, at every level. On a few kilobytes of
// ordinary text labelled application/pkcs7-mime that took more than half
// an hour and 14 GB before it gave up (TestHostileBERReencoding). The walk
// here is linear in the input times the depth, and pkcs7.Parse only sees
// input it passes.
func checkBER(b []byte) error {
	e, _, err := berNext(b, 0)
	if err != nil {
		return err
	}
	return checkBERElement(e, 0)
}

// checkBERElement checks the elements a constructed element contains.
func checkBERElement(e berElement, depth int) error {
	if e.tag&0x20 == 0 {
		return nil
	}
	children, err := berChildren(e, depth)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := checkBERElement(c, depth+1); err != nil {
			return err
		}
	}
	return nil
}
