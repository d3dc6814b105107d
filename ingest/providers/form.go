package providers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"

	"github.com/certharvest/certharvest/ingest"
)

// formField is one field of a posted form, its value as bytes: a message
// in a form must stay exactly as posted.
type formField struct {
	name  string
	value []byte
}

// form is a posted form's fields in the order they came.
type form []formField

// last returns the last value of the field name, as the providers'
// libraries read a field given twice (Mailgun merges a message's own
// variables into its fields: its signature fields come last).
func (f form) last(name string) ([]byte, bool) {
	for i := len(f) - 1; i >= 0; i-- {
		if f[i].name == name {
			return f[i].value, true
		}
	}
	return nil, false
}

// lastString is last as a string, "" when absent.
func (f form) lastString(name string) string {
	v, _ := f.last(name)
	return string(v)
}

var errNotForm = errors.New("not a form: want Content-Type multipart/form-data or application/x-www-form-urlencoded")

// parseForm decodes body, a multipart/form-data (RFC 7578) or
// application/x-www-form-urlencoded form as contentType says, into at most
// maxFields fields. A part's bytes are taken as they are: no
// Content-Transfer-Encoding is undone (RFC 7578 §4.7 deprecates it, and a
// message must stay byte for byte). A multipart form's values take at most
// the body's bytes again; a urlencoded form's are decoded in body itself.
func parseForm(contentType string, body []byte) (form, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %v", errNotForm, err)
	case mt == "multipart/form-data":
		return parseMultipart(body, params["boundary"])
	case mt == "application/x-www-form-urlencoded":
		return parseURLEncoded(body)
	}
	return nil, fmt.Errorf("%w, not %q", errNotForm, mt)
}

func parseMultipart(body []byte, boundary string) (form, error) {
	if boundary == "" {
		return nil, errors.New("multipart/form-data without a boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var f form
	for {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return f, nil
		}
		if err != nil {
			return nil, fmt.Errorf("multipart/form-data: %w", err)
		}
		if len(f) >= maxFormFields {
			return nil, fmt.Errorf("%w: more than %d form fields", ingest.ErrTooMany, maxFormFields)
		}
		name := part.FormName()
		value, err := io.ReadAll(part)
		if err != nil {
			return nil, fmt.Errorf("multipart/form-data: field %q: %w", name, err)
		}
		f = append(f, formField{name, value})
	}
}

// parseURLEncoded decodes name=value pairs separated by & (the WHATWG URL
// standard's application/x-www-form-urlencoded parser; ; is no
// separator, as in Go's url.ParseQuery). The values are decoded in place:
// they are slices of body, which is no longer the form.
func parseURLEncoded(body []byte) (form, error) {
	var f form
	for len(body) > 0 {
		var pair []byte
		pair, body, _ = bytes.Cut(body, []byte("&"))
		if len(pair) == 0 {
			continue
		}
		if len(f) >= maxFormFields {
			return nil, fmt.Errorf("%w: more than %d form fields", ingest.ErrTooMany, maxFormFields)
		}
		name, value, _ := bytes.Cut(pair, []byte("="))
		n, err := unescapeForm(name)
		if err != nil {
			return nil, err
		}
		v, err := unescapeForm(value)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", n, err)
		}
		f = append(f, formField{string(n), v})
	}
	return f, nil
}

// unescapeForm undoes a form's escapes in place (+ is a space, %XX a
// byte) and returns s's beginning that holds the result: it is never
// longer than s, and each byte is written at or before where it was read.
func unescapeForm(s []byte) ([]byte, error) {
	out := s[:0]
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			out = append(out, ' ')
		case '%':
			if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
				return nil, fmt.Errorf("bad escape %q in form", s[i:min(i+3, len(s))])
			}
			out = append(out, byte(unhex(s[i+1])<<4|unhex(s[i+2])))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out, nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
