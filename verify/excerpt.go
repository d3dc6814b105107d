package verify

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxExcerpt bounds the bytes of a message that an error quotes, in a
// report's detail or a log line: enough to recognise what was found, never
// enough to carry what a hostile sender (or a file that is not a message)
// would have certharvest copy out.
const maxExcerpt = 40

// Excerpt quotes the start of untrusted input for an error that must show
// what it found: at most maxExcerpt bytes of it, Go-quoted (quotes, control
// characters and bytes that are not UTF-8 escaped), and "…" when cut.
func Excerpt(s string) string {
	cut := len(s) > maxExcerpt
	if cut {
		i := maxExcerpt
		for i > maxExcerpt-utf8.UTFMax && !utf8.RuneStart(s[i]) {
			i-- // not in the middle of a character
		}
		s = s[:i]
	}
	q := strconv.Quote(s)
	if cut {
		q += "…"
	}
	return q
}

// SanitizeDetail makes the text of an error fit for a report's detail or
// a log line, as the pipeline's own details are: control characters and
// invalid UTF-8 escaped, cut to about maxDetail bytes. The inputs use it
// for the errors they report themselves (a message that could not be read).
func SanitizeDetail(s string) string { return sanitize(s, maxDetail) }

// headerError rewords an error of textproto.ReadHeader, which quotes the
// whole line at fault (a line of the sender's choosing, as long as the
// header), to quote an Excerpt of it.
func headerError(err error) error {
	msg := err.Error()
	for _, prefix := range []string{
		"message: malformed MIME header initial line: ",
		"message: malformed MIME header line: ",
		"message: malformed MIME header key: ",
	} {
		if line, ok := strings.CutPrefix(msg, prefix); ok {
			return errors.New(strings.TrimPrefix(prefix, "message: ") + Excerpt(line))
		}
	}
	return err
}
