package publish

import (
	"fmt"
	"strings"

	"github.com/certharvest/certharvest/output"
)

// Format writes certificates in one format: a file is its header followed
// by the records of any number of certificates.
type Format interface {
	// Ext is the extension of a file holding one address's record, for an
	// export into a folder: "pem", "ldif", "zone", "json".
	Ext() string
	// AppendHeader appends what a file starts with (LDIF's version line),
	// if anything.
	AppendHeader(dst []byte) []byte
	// AppendRecord appends c's record. An error leaves dst as it was.
	AppendRecord(dst []byte, c output.StoredCertificate) ([]byte, error)
}

// Formats lists the formats' names, as New takes them.
func Formats() []string { return []string{"pem", "ldif", "smimea", "json"} }

// Options configure New. The zero value of each field means its default;
// Options.LDAPBase is required for LDIF.
type Options struct {
	// LDAPBase is the DN the entries are under, for LDIF:
	// ou=people,dc=example,dc=org.
	LDAPBase string
	// LDAPRDN names the entries, for LDIF (LDAPRDN* constants); default
	// LDAPRDNMail.
	LDAPRDN string
	// LDAPAdd writes each entry whole (changetype: add), for a directory
	// whose entries do not exist yet, instead of replacing certharvest's
	// two attributes of existing ones.
	LDAPAdd bool
	// SMIMEA is the usage, selector and matching type of SMIMEA records;
	// nil: DefaultSMIMEA().
	SMIMEA *SMIMEAParams
}

// New returns the format called name, one of Formats.
func New(name string, opts Options) (Format, error) {
	switch name {
	case "pem":
		return pemFormat{}, nil
	case "json":
		return jsonFormat{}, nil
	case "ldif":
		f, err := newLDIF(opts)
		if err != nil {
			return nil, err
		}
		return f, nil
	case "smimea":
		p := DefaultSMIMEA()
		if opts.SMIMEA != nil {
			p = *opts.SMIMEA
		}
		if err := p.check(); err != nil {
			return nil, err
		}
		return smimeaFormat{p}, nil
	}
	return nil, fmt.Errorf("unknown format %q: want %s", name, strings.Join(Formats(), ", "))
}
