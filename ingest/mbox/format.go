package mbox

import (
	"fmt"
	"strings"
)

// Format is an mbox variant.
type Format int

// The variants. Auto, the zero value, is decided for each file by its
// first message (Reader).
const (
	Auto Format = iota
	RD          // mboxrd: ">*From " lines quoted with one more '>'
	O           // mboxo: "From " lines quoted as ">From "
	CL2         // mboxcl2: Content-Length, no quoting
)

var formatNames = [...]string{Auto: "auto", RD: "mboxrd", O: "mboxo", CL2: "mboxcl2"}

// String returns the format's name: auto, mboxrd, mboxo or mboxcl2.
func (f Format) String() string {
	if f < 0 || int(f) >= len(formatNames) {
		return fmt.Sprintf("Format(%d)", int(f))
	}
	return formatNames[f]
}

// ParseFormat returns the format named s (as String names it, in any
// case).
func ParseFormat(s string) (Format, error) {
	for f, name := range formatNames {
		if strings.EqualFold(s, name) {
			return Format(f), nil
		}
	}
	return Auto, fmt.Errorf("unknown mbox format %q: want auto, mboxrd, mboxo or mboxcl2", s)
}
