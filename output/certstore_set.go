package output

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// The files of an address in the certificate folder:
//
//	<address>.crt       the certificate to encrypt to: what applications read
//	<address>.sign.crt  the signing certificate, when it is another (a
//	                    dual-key sender); absent when <address>.crt signs too
//	<address>.caps      the sender's SMIMECapabilities, one algorithm a line,
//	                    from the message that stored <address>.crt
//
// An address whose domain ends in ".sign" is never stored (CheckStorable):
// its <address>.crt would be the signing certificate file of the address
// without it.
const (
	// SignSuffix ends the name of an address's signing certificate file.
	SignSuffix = ".sign.crt"
	// CapsSuffix ends the name of an address's capabilities file.
	CapsSuffix = ".caps"
	// maxNameBytes is the longest file name of common file systems.
	maxNameBytes = 255
)

// unstorableError is an address the certificate folder cannot hold files
// for. It matches verify.ErrInvalidAddress and verify.ReasonStoreRefused:
// no retry helps.
type unstorableError struct{ addr, why string }

func (e *unstorableError) Error() string {
	return "address " + e.addr + " cannot be stored: " + e.why
}

func (e *unstorableError) Is(target error) bool {
	return target == verify.ErrInvalidAddress || target == verify.ReasonStoreRefused
}

// CheckStorable refuses a normalised address that no store keeps: one
// whose domain ends in ".sign", whose certificate file <address>.crt would
// be another address's signing certificate file (<address>.sign.crt). No
// top-level domain "sign" exists. The error matches
// verify.ReasonStoreRefused.
func CheckStorable(addr string) error {
	if strings.HasSuffix(addr, ".sign") {
		return &unstorableError{addr, `its domain ends in ".sign", the suffix of signing certificate files`}
	}
	return nil
}

// notStored makes an address no store keeps read as one without a
// certificate (fs.ErrNotExist); other errors are returned as they are.
func notStored(err error) error {
	var u *unstorableError
	if errors.As(err, &u) {
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	return err
}

// Current is one of an address's current certificates as a store holds
// it: Data (PEM or DER) nil when there is none, Cert nil when Data does
// not parse (damaged, or not ours: it is replaced).
//
// Floor, when set, is the latest NotBefore of the certificates of its kind
// retired from the address (Retire): no certificate whose NotBefore is
// not strictly later becomes current of that kind, so that a replayed old
// message brings back neither a revoked certificate nor an older one.
type Current struct {
	Data  []byte
	Cert  *x509.Certificate
	Floor time.Time
}

// sum is the name of a certificate in the history: the SHA-256 of the
// certificate, or of the bytes when they do not parse.
func (c Current) sum() string {
	h := sha256.Sum256(c.Data)
	if c.Cert != nil {
		h = sha256.Sum256(c.Cert.Raw)
	}
	return hex.EncodeToString(h[:])
}

// decide compares a certificate with a current one: the same one is
// unchanged; one that is not strictly newer (NotBefore) than it, or than
// the floor, is kept; else it is to be stored. One that does not parse is
// replaced.
func (c Current) decide(cert *x509.Certificate) verify.Action {
	switch {
	case c.Data != nil && c.Cert != nil && bytes.Equal(c.Cert.Raw, cert.Raw):
		return verify.ActionUnchanged
	case c.Data != nil && c.Cert != nil && !cert.NotBefore.After(c.Cert.NotBefore):
		return verify.ActionKeptExisting
	case !c.Floor.IsZero() && !cert.NotBefore.After(c.Floor):
		return verify.ActionKeptExisting
	}
	return verify.ActionStored
}

// SetPlan is what storing a CertSet over an address's current
// certificates does (PlanSet): the rule of verify.CertStore, for every
// store.
type SetPlan struct {
	// Action is the store's: ActionStored when anything changes.
	Action verify.Action
	// StoreEnc: set.Encryption becomes the certificate to encrypt to.
	StoreEnc bool
	// Sign is the signing certificate kept beside it afterwards; nil:
	// none, the certificate to encrypt to signs. StoreSign: Sign is to be
	// written; DropSign: the one kept beside goes.
	Sign      *x509.Certificate
	StoreSign bool
	DropSign  bool
	// Retired are the certificates that stop being current, each once,
	// for the history.
	Retired []Current
}

// PlanSet decides a CertSet against an address's current certificates:
// enc, the certificate to encrypt to, and sign, the signing certificate
// kept beside it (Data nil: none, enc signs). Each of set's two (its
// signing certificate is set.Encryption when set.Signing is nil) replaces
// the current one of its kind only when its NotBefore is strictly later,
// and later than the kind's Floor. An address without a certificate to
// encrypt to gets none unless set.Encryption is stored.
func PlanSet(enc, sign Current, set verify.CertSet) SetPlan {
	signCur := sign
	if sign.Data == nil {
		signCur = enc
		signCur.Floor = sign.Floor
	}
	newSign := set.Signing
	if newSign == nil {
		newSign = set.Encryption
	}
	encAction, signAction := enc.decide(set.Encryption), signCur.decide(newSign)
	var p SetPlan
	p.StoreEnc = encAction == verify.ActionStored
	if !p.StoreEnc && enc.Data == nil {
		// Below the floor of a retired certificate: nothing, not even a
		// signing certificate without one to encrypt to.
		return SetPlan{Action: verify.ActionKeptExisting}
	}
	finalEnc := enc.Cert
	if p.StoreEnc {
		finalEnc = set.Encryption
	}
	// The signing certificate afterwards, and whether it is another.
	var finalSign *x509.Certificate
	switch {
	case signAction == verify.ActionStored:
		finalSign = newSign
	case sign.Data != nil:
		finalSign = sign.Cert
	default:
		finalSign = enc.Cert
	}
	other := finalSign != nil && (finalEnc == nil || !bytes.Equal(finalSign.Raw, finalEnc.Raw))
	if other {
		p.Sign = finalSign
		p.StoreSign = sign.Cert == nil || !bytes.Equal(sign.Cert.Raw, finalSign.Raw)
	}
	p.DropSign = !other && sign.Data != nil
	switch {
	case p.StoreEnc || p.StoreSign || p.DropSign:
		p.Action = verify.ActionStored
	case encAction == verify.ActionUnchanged && signAction == verify.ActionUnchanged:
		p.Action = verify.ActionUnchanged
	default:
		p.Action = verify.ActionKeptExisting
		return p
	}
	if enc.Data == nil && sign.Data == nil {
		return p // a new address: nothing to retire
	}
	// The history: every current certificate that is current no more.
	keep := map[string]bool{}
	if finalEnc != nil {
		keep[Current{Cert: finalEnc}.sum()] = true
	}
	if p.Sign != nil {
		keep[Current{Cert: p.Sign}.sum()] = true
	}
	if !p.StoreEnc {
		keep[enc.sum()] = true // kept as it is, parsed or not
	}
	for _, old := range []Current{enc, sign} {
		if old.Data == nil || keep[old.sum()] {
			continue
		}
		keep[old.sum()] = true
		p.Retired = append(p.Retired, old)
	}
	return p
}

// readCurrent reads the file name of root: a missing file is no
// certificate.
func readCurrent(root folder, name string) (Current, error) {
	c, _, err := readCurrentID(root, name)
	return c, err
}

// readCurrentID is readCurrent that also returns the identity of the file
// read (certstore_known.go).
func readCurrentID(root folder, name string) (Current, fileID, error) {
	data, id, _, err := root.readFileID(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Current{}, fileID{}, nil
	case err != nil:
		return Current{}, fileID{}, err
	}
	c := Current{Data: data}
	c.Cert, _ = parsePEMCertificate(data)
	return c, id, nil
}

// StoreSet makes set's certificates the current ones of addr, each where
// its NotBefore is strictly later than the current one's of its kind
// (verify.CertStore): <address>.crt for set.Encryption, and the signing
// certificate, set.Signing or else set.Encryption, in <address>.sign.crt
// when it is not <address>.crt's certificate. A tie keeps the current
// certificate: CAs often truncate NotBefore to the day and a user may
// re-key the same day, and if a tie replaced it, replaying the messages of
// two such certificates in turn would flip the address between their keys.
// A certificate that stops being current goes to the history. set's
// Capabilities are written to <address>.caps when <address>.crt is.
//
// Each file holds its old content or its new content after a crash; the
// history first, then the certificate files, each durable before the next
// step. A crash between two files leaves each of the two kinds at a
// certificate that was current or is newer, and a retry completes it.
func (s *CertStore) StoreSet(ctx context.Context, addr string, set verify.CertSet) (verify.StoreResult, error) {
	path, err := s.Path(addr)
	if err != nil {
		return verify.StoreResult{}, err
	}
	if s.foldsCase && !isASCII(addr) {
		// Jörg@ and jörg@ are two addresses (RFC 9598 §5 folds no case
		// in a UTF-8 local part) that such a file system gives one file:
		// one's certificate would replace the other's. An ASCII address
		// is lower case, so no two collide.
		return verify.StoreResult{}, fmt.Errorf("%w: %s is on a file system that ignores case, where %s could share its file with another address: internationalised addresses need a case-sensitive one",
			verify.ReasonStoreRefused, s.dir, addr)
	}
	encName, signName := addr+".crt", addr+SignSuffix
	if set.Signing != nil && len(signName) > maxNameBytes {
		return verify.StoreResult{}, &unstorableError{addr, "too long for the file name of its signing certificate"}
	}
	root := rootFolder(s.dir)
	// An address too long for a signing certificate file has none.
	signable := len(signName) <= maxNameBytes
	if known, ok := s.known.lookup(addr, set.Encryption, set.Signing); ok {
		// The same certificates again, as last found (a sender already
		// known): unchanged when both files are still the ones read then
		// (certstore_known.go), without the lock.
		statSign := signName
		if !signable {
			statSign = ""
		}
		if s.known.unchanged(root, encName, statSign, known) {
			if err := ctx.Err(); err != nil {
				return verify.StoreResult{}, err
			}
			res := verify.StoreResult{Action: verify.ActionUnchanged, Path: path}
			if set.Signing != nil {
				res.SignPath = filepath.Join(s.dir, signName)
			}
			return res, nil
		}
	}

	unlock, err := s.lock(addr)
	if err != nil {
		return verify.StoreResult{}, err
	}
	defer unlock()
	if err := ctx.Err(); err != nil {
		return verify.StoreResult{}, err
	}

	// Not through a link (certdir.go): the current certificates are kept
	// in the history, and a link would have it copy any file there.
	data, encID, seen, err := root.readFileID(encName)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data = nil
	case err != nil:
		return verify.StoreResult{}, fmt.Errorf("reading the current certificate: %w", err)
	}
	var sign Current
	var signID fileID
	if signable {
		if sign, signID, err = readCurrentID(root, signName); err != nil {
			return verify.StoreResult{}, fmt.Errorf("reading the current signing certificate: %w", err)
		}
	}
	if data != nil && set.Signing == nil && sign.Data == nil && holdsCertificate(data, set.Encryption) {
		// The same certificate again (a message reprocessed, a sender
		// writing twice), known without parsing it, and no older
		// signing certificate kept beside it.
		s.known.remember(addr, knownFile{set.Encryption.Raw, encID}, knownFile{}, seen)
		return verify.StoreResult{Action: verify.ActionUnchanged, Path: path}, nil
	}
	enc := Current{Data: data}
	if data != nil {
		enc.Cert, _ = parsePEMCertificate(data)
	}
	plan := PlanSet(enc, sign, set)
	if plan.Action == verify.ActionUnchanged && set.Signing != nil && sign.Cert != nil &&
		bytes.Equal(sign.Cert.Raw, set.Signing.Raw) && !bytes.Equal(sign.Cert.Raw, set.Encryption.Raw) {
		// A dual-key sender's pair again.
		s.known.remember(addr, knownFile{set.Encryption.Raw, encID}, knownFile{set.Signing.Raw, signID}, seen)
	}
	if plan.Action == verify.ActionStored && (enc.Data == nil || sign.Data == nil) {
		// Where a kind has no current certificate, one of its kind may
		// have been retired (certstore_retire.go): decide again above its
		// floor. (Read only then: a current certificate is newer than any
		// retired one of its kind.)
		encFloor, signFloor, err := retiredFloors(root, addr)
		if err != nil {
			return verify.StoreResult{}, fmt.Errorf("reading the retired certificates: %w", err)
		}
		if !encFloor.IsZero() || !signFloor.IsZero() {
			if enc.Data == nil {
				enc.Floor = encFloor
			}
			if sign.Data == nil {
				sign.Floor = signFloor
			}
			plan = PlanSet(enc, sign, set)
		}
	}
	res := verify.StoreResult{Path: path, Action: plan.Action}
	if plan.Sign != nil {
		res.SignPath = filepath.Join(s.dir, signName)
	}
	if plan.Action != verify.ActionStored {
		return res, nil
	}
	if plan.StoreSign && len(signName) > maxNameBytes {
		return verify.StoreResult{}, &unstorableError{addr, "too long for the file name of its signing certificate"}
	}
	s.known.forget(addr)

	// The steps: the history, then the certificate files (the signing
	// certificate's and the capabilities before <address>.crt, which
	// applications read).
	var steps [][]fileWrite
	if len(plan.Retired) > 0 {
		histDir, err := historyFolder(root, addr)
		if err != nil {
			return verify.StoreResult{}, fmt.Errorf("history folder: %w", err)
		}
		defer histDir.close()
		var step []fileWrite
		for _, h := range plan.Retired {
			step = append(step, fileWrite{histDir, h.sum() + ".crt", h.Data, "keeping the replaced certificate"})
		}
		steps = append(steps, step)
	}
	var step []fileWrite
	if plan.StoreSign {
		data := EncodeCertificatePEM(plan.Sign)
		step = append(step, fileWrite{root, signName, data, ""})
		res.Bytes += len(data)
	}
	if plan.StoreEnc && len(addr+CapsSuffix) <= maxNameBytes { // else the address is too long to have one
		// The capabilities go with the certificate: written when there
		// are some, else the older certificate's removed, before the
		// certificate is placed (and the folder synced: durably).
		if len(set.Capabilities) > 0 {
			step = append(step, fileWrite{root, addr + CapsSuffix, encodeCapabilities(set.Capabilities), ""})
		} else if enc.Data != nil {
			root.remove(addr + CapsSuffix)
		}
	}
	if plan.StoreEnc {
		data := EncodeCertificatePEM(set.Encryption)
		step = append(step, fileWrite{root, encName, data, ""})
		res.Bytes += len(data)
	}
	if len(step) > 0 {
		steps = append(steps, step)
	}
	if err := s.write(steps); err != nil {
		return verify.StoreResult{}, err
	}
	if plan.DropSign {
		// Its certificate is in the history, or is <address>.crt's.
		// Should the removal be lost in a crash, the older signing
		// certificate stays beside <address>.crt until the next
		// message replaces it.
		root.remove(signName)
		if err := root.sync(); err != nil {
			return verify.StoreResult{}, err
		}
	}
	return res, nil
}

// fileWrite is a file StoreSet writes: its folder, name, content, and what
// an error writing it is about ("": the certificate).
type fileWrite struct {
	dir  folder
	name string
	data []byte
	what string
}

// write writes the files of steps, each step durable before the next: one
// file at a time with writeFileAtomicIn, or as one request of a group
// commit.
func (s *CertStore) write(steps [][]fileWrite) error {
	if s.group == nil {
		for _, step := range steps {
			for _, w := range step {
				if err := writeFileAtomicIn(w.dir, w.name, w.data, 0o644); err != nil {
					return explainWrite(w, err)
				}
			}
		}
		return nil
	}
	// Group commit: the files are renamed into place once durable. The
	// address's lock is held until then, so the next Store for it reads
	// the new files.
	req := &commitRequest{}
	whats := map[*tempFile]fileWrite{}
	for _, step := range steps {
		var temps []*tempFile
		for _, w := range step {
			t, err := writeTemp(w.dir, w.name, w.data, 0o644, s.temps)
			if err != nil {
				for _, st := range req.steps {
					for _, t := range st {
						t.discard()
					}
				}
				for _, t := range temps {
					t.discard()
				}
				return explainWrite(w, err)
			}
			temps = append(temps, t)
			whats[t] = w
		}
		req.steps = append(req.steps, temps)
	}
	s.group.Do(req, commitGroup)
	if req.err != nil {
		return explainWrite(whats[req.failed], req.err)
	}
	return nil
}

func explainWrite(w fileWrite, err error) error {
	if w.what != "" {
		return fmt.Errorf("%s: %w", w.what, err)
	}
	return err
}

// encodeCapabilities is the content of <address>.caps: one algorithm a
// line.
func encodeCapabilities(caps []string) []byte {
	var b bytes.Buffer
	for _, c := range caps {
		b.WriteString(c)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// maxCapsFile bounds the capabilities file read: verify.MaxCapabilities
// names, each short.
const maxCapsFile = 4096

// parseCapabilities reads a capabilities file, within its bounds.
func parseCapabilities(data []byte) []string {
	if len(data) > maxCapsFile {
		data = data[:maxCapsFile]
	}
	var caps []string
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line != "" && len(caps) < verify.MaxCapabilities {
			caps = append(caps, line)
		}
	}
	return caps
}

// LoadStored returns the current certificates of an address: the one to
// encrypt to (Cert, as Load), the signing certificate when it is another,
// and the capabilities kept with them. Its error wraps fs.ErrNotExist when
// the address has no certificate.
func (s *CertStore) LoadStored(addr string) (StoredCertificate, error) {
	c, err := s.Load(addr)
	if err != nil {
		return StoredCertificate{}, err
	}
	st := StoredCertificate{Address: addr, Cert: c}
	root := rootFolder(s.dir)
	if len(addr+SignSuffix) > maxNameBytes {
		return st, nil // too long to have either file
	}
	if data, err := root.readFile(addr + SignSuffix); err == nil {
		if st.Signing, err = parsePEMCertificate(data); err != nil {
			return StoredCertificate{}, fmt.Errorf("%s: %w", filepath.Join(s.dir, addr+SignSuffix), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return StoredCertificate{}, err
	}
	if data, err := root.readFile(addr + CapsSuffix); err == nil {
		st.Capabilities = parseCapabilities(data)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return StoredCertificate{}, err
	}
	return st, nil
}

// ReplaySets returns what a store is given, in order, to hold an address's
// certificates as another store holds them (an export, an import): its
// history, oldest first, then its current certificates. A certificate of
// the history is given alone, unless it is newer than the certificate to
// encrypt to, which only a replaced signing certificate is: it is then
// given as the signing certificate beside that one (with its
// capabilities, which go with it), so that it never becomes the
// certificate to encrypt to.
func ReplaySets(history []*x509.Certificate, cur StoredCertificate) []verify.CertSet {
	sets := make([]verify.CertSet, 0, len(history)+1)
	for _, h := range history {
		if cur.Cert != nil && cur.Signing != nil && !h.NotBefore.Before(cur.Cert.NotBefore) {
			sets = append(sets, verify.CertSet{Encryption: cur.Cert, Signing: h, Capabilities: cur.Capabilities})
			continue
		}
		sets = append(sets, verify.CertSet{Encryption: h})
	}
	if cur.Cert != nil {
		sets = append(sets, verify.CertSet{Encryption: cur.Cert, Signing: cur.Signing, Capabilities: cur.Capabilities})
	}
	return sets
}
