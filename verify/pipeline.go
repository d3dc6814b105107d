package verify

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/certharvest/certharvest/internal/dkimfast"
	"github.com/certharvest/certharvest/internal/gencache"
	"github.com/certharvest/certharvest/internal/rsaverify"
)

// maxMessageIDLen bounds the Message-ID a Result carries: the longest line
// RFC 5322 §2.1.1 allows. A longer one is cut, marked with "…".
const maxMessageIDLen = 998

// DefaultMaxSize is the default largest message accepted: 25 MiB, a common
// MTA limit.
const DefaultMaxSize = 25 << 20

// Action is what the store did with an accepted certificate.
type Action string

const (
	// ActionStored: the certificate is now the address's current one.
	ActionStored Action = "stored"
	// ActionUnchanged: the address's current certificate is this one.
	ActionUnchanged Action = "unchanged"
	// ActionKeptExisting: the address's current certificate is as new or
	// newer (a NotBefore as late or later) and was kept: only a strictly
	// later NotBefore replaces it, so a replayed old message cannot roll the
	// address back to an older key, nor two certificates of one day take
	// turns. So is a certificate no later than one that certharvest
	// revalidate retired from the address as revoked.
	ActionKeptExisting Action = "kept_existing"
)

// StoreResult is what a CertStore reports about one certificate.
type StoreResult struct {
	Action Action
	// Path is the address's certificate file.
	Path string
	// SignPath is the file of the address's signing certificate, kept
	// beside Path when it is another certificate (CertSet.Signing); ""
	// otherwise.
	SignPath string
	// Bytes is the size of the PEM written, zero when nothing was written.
	Bytes int
}

// CertSet is what the pipeline hands a CertStore for an address.
type CertSet struct {
	// Encryption is the certificate to encrypt to (enccert.go), the
	// address's current certificate: what applications read.
	Encryption *x509.Certificate
	// Signing is the signer's certificate when it is not Encryption (a
	// dual-key sender), kept beside it; nil when Encryption signs too.
	Signing *x509.Certificate
	// Capabilities are the sender's SMIMECapabilities
	// (Result.Capabilities), kept with Encryption when it is stored.
	Capabilities []string
}

// CertStore keeps the current certificates of each address: the folder of
// PEM files of package output, or a store on another system. StoreSet is
// called once every check has passed, with the From address (lower case,
// ASCII) and its CertSet: the certificate to encrypt to, and the signer's
// when it is another. An address has two current certificates, the one to
// encrypt to and the one that signs (the same one, unless the sender has
// two keys). It must:
//
//   - make each certificate of the set the address's current one of its
//     kind only if its NotBefore is strictly later than the current one's,
//     else leave the current one: a replayed old message never rolls an
//     address back to an older key. ActionStored when either changed,
//     ActionUnchanged when both were these certificates already,
//     ActionKeptExisting otherwise;
//   - be durable when it returns: the message's report line, and then its
//     removal from the queue, follow;
//   - be idempotent and safe for concurrent use: a message may be verified
//     again after a crash, and many are stored at once;
//   - honour ctx, which ends at the shutdown timeout.
//
// An error wrapping ReasonStoreRefused is final (store_refused: the store
// will never take it, as a link where the file goes); any other error is
// temporary (store_failed), and serve verifies the message again later.
//
// The pipeline's ctx carries the id of the message (Result.ID), for a store
// that records where a certificate came from: StoringMessage.
type CertStore interface {
	StoreSet(ctx context.Context, addr string, set CertSet) (StoreResult, error)
}

// storingKey is the context key of the id of the message whose certificate
// is being stored.
type storingKey struct{}

// StoringMessage returns the id (Result.ID) of the message whose
// certificate a CertStore's Store is given, from the ctx of that call; ""
// when the caller is not the pipeline (an import).
func StoringMessage(ctx context.Context) string {
	id, _ := ctx.Value(storingKey{}).(string)
	return id
}

// Options configure a Pipeline. Roots and LookupTXT are required.
type Options struct {
	// Roots are the trust anchors for certificate chains.
	Roots *x509.CertPool
	// LookupTXT fetches DKIM key records: DNSLookup, or a DKIMKeys set.
	LookupTXT LookupTXTFunc
	// Align is the DKIM alignment mode.
	Align Alignment
	// Now returns the verification time for certificate validity; nil
	// means time.Now. A fixed time (--at) makes runs reproducible.
	Now func() time.Time
	// MaxSize is the largest message accepted, in bytes; 0 means
	// DefaultMaxSize.
	MaxSize int64
	// HeaderLimits cap the header section: more fields or bytes is
	// message_malformed before any parser reads it.
	HeaderLimits HeaderLimits
	// MaxDKIMVerifications caps the DKIM signatures verified per message;
	// 0 means 5.
	MaxDKIMVerifications int
	// TrustAuthservIDs are the authserv-ids whose Authentication-Results
	// fields (RFC 8601) establish DKIM for a signature whose key record no
	// longer exists (authres.go); none: DKIM is established by signatures
	// alone.
	TrustAuthservIDs []string
	// Revocation checks whether the certificates of a verified chain are
	// revoked, as RevocationMode says; nil, or RevocationOff, checks
	// nothing.
	Revocation     RevocationChecker
	RevocationMode RevocationMode
	// Store receives accepted certificates; nil verifies without storing.
	Store CertStore
	// Logger receives each message's story; nil discards it.
	Logger *slog.Logger
	// BlockPrefix prefixes the second and later lines of a message's story
	// with "| " (for the human-readable log format).
	BlockPrefix bool
	// Reference verifies on the reference path, for audits: every CMS
	// parsed by the pkcs7 library (github.com/smallstep/pkcs7) and every
	// signer's chain verified in full by crypto/x509, without the CMS
	// fast path (cmsder.go), the chain link cache (linkCache) or the
	// RSA verifier that keeps moduli (internal/rsaverify). It is
	// slower. The SignerInfo check (derSignerInfo.check) and every limit
	// are the same on both paths, and so are the verdicts, details,
	// chains and stories of the test corpus (TestReferencePathCorpus).
	// They differ only on a CMS whose certificates pkcs7's BER converter
	// refuses (hostile bytes inside a certificate, which the fast path
	// leaves to the chain check): signature_malformed here, a chain
	// reason there. The cache of parsed CA certificates (certCache)
	// decides nothing; only the fast path parses through it, so it goes
	// unused here. The caches of a sender already known (its parsed
	// certificate, its chain, the DKIM key record: leafcache.go,
	// chaincache.go) are off.
	Reference bool
	// RequireProfile refuses a certificate below this S/MIME BR profile
	// (cert_policy, profile.go); ProfileNone or "" requires none.
	RequireProfile Profile
}

// Pipeline verifies messages. It is safe for concurrent use.
type Pipeline struct {
	opts  Options
	logMu sync.Mutex
	// records lends the stories their arrays of records (story.go).
	records sync.Pool
	links   linkCache // verified intermediate-to-root links (chain.go)
	certs   certCache // parsed CA certificates (certcache.go)
	// rsa verifies the RSA PKCS #1 v1.5 signatures of DKIM and CMS,
	// keeping the moduli of keys that recur (internal/rsaverify); nil on
	// the reference path: crypto/rsa.
	rsa *rsaverify.Verifier
	// cms is what the CMS fast path keeps: certs and rsa.
	cms cmsCaches
	// profiles are the signers' S/MIME BR profiles and zlint findings
	// (profile.go).
	profiles profileCache
	// stories keeps the stories' words about CA certificates and known
	// senders' (storycache.go).
	stories storyCache
	// chains keeps the chains verified for known senders (chaincache.go).
	chains chainCache
	// dkimKeys keeps the DKIM key records parsed (dkimfast.KeyCache).
	dkimKeys *dkimfast.KeyCache
}

// New returns a Pipeline.
func New(opts Options) (*Pipeline, error) {
	if opts.Roots == nil {
		return nil, errors.New("verify: no trust roots")
	}
	if opts.LookupTXT == nil {
		return nil, errors.New("verify: no DKIM key lookup")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	opts.HeaderLimits = opts.HeaderLimits.withDefaults()
	if opts.MaxDKIMVerifications <= 0 {
		opts.MaxDKIMVerifications = defaultMaxDKIMVerifications
	}
	p := &Pipeline{opts: opts}
	if !opts.Reference {
		p.rsa = rsaverify.New(rsaverify.Options{})
		// The caches of what recurs from message to message: the
		// reference path verifies everything every time.
		// A sender's certificate and chain are kept from its second
		// message: a scan of new senders, or a hostile one's endless
		// new certificates, keeps nothing but hashes.
		p.certs.leaves = gencache.NewSeenTwice[*knownLeaf](maxKnownLeaves, maxKnownLeafBytes)
		p.stories.leaves = p.certs.leaves
		p.chains.verdicts = gencache.NewSeenTwice[*chainVerdict](maxChainVerdicts, maxChainVerdictBytes)
		p.dkimKeys = dkimfast.NewKeyCache(maxDKIMKeyRecords, maxDKIMKeyRecordBytes)
	}
	p.cms = cmsCaches{certs: &p.certs, rsa: p.rsa}
	return p, nil
}

// Result is the verdict on one message.
type Result struct {
	// ID names the message in the logs and the report.
	ID string
	// Reason is ReasonOK for an accepted message.
	Reason Reason
	// Detail explains the reason in words.
	Detail string
	// At is the time certificate validity was judged at.
	At time.Time

	MessageID string
	// From is the normalised From address, once it has been validated.
	From string
	DKIM *DKIMResult
	// Cert is the signer certificate, once the CMS signature verified.
	Cert     *x509.Certificate
	CertInfo *CertInfo
	// Chain is the verified chain, signer first.
	Chain []*x509.Certificate
	// EncCert is the certificate to encrypt to (enccert.go), once chosen:
	// Cert itself (and EncCertInfo is CertInfo), or another certificate of
	// the message for From.
	EncCert     *x509.Certificate
	EncCertInfo *CertInfo
	// Capabilities are the algorithms of the signer's SMIMECapabilities
	// (RFC 8551 §2.5.2), named (AES-256-GCM, RSAES-OAEP, or a dotted OID),
	// in the sender's order of preference, at most MaxCapabilities; nil
	// without the attribute.
	Capabilities []string
	// Revocation is what the revocation check found for the signer's
	// chain, and EncRevocation for the encryption certificate's when it is
	// another (nil: none made).
	Revocation    *RevocationInfo
	EncRevocation *RevocationInfo
	// Warnings are what passed but deserves a look (an unknown revocation
	// status in soft mode), in the report.
	Warnings []string

	// Action and CertFile say what the store did (accepted messages);
	// SignCertFile is the signing certificate's file, when it is kept
	// beside CertFile.
	Action       Action
	CertFile     string
	SignCertFile string

	// Duration is the time the pipeline took, and Stages its parts (zero
	// for a stage not reached).
	Duration time.Duration
	Stages   [NumStages]time.Duration
}

// Accepted reports whether every check passed.
func (r *Result) Accepted() bool { return r.Reason == ReasonOK }

// MessageIDFor returns the id the pipeline gives a message: its ID, or a
// short digest of its bytes; for a message of an mbox, of its bytes and its
// number there, so that two copies of one message in an mbox have ids of
// their own.
func MessageIDFor(m *Message) string {
	if m.ID != "" {
		return m.ID
	}
	if m.MboxIndex > 0 {
		h := NewMessageIDHash(m.MboxIndex)
		h.Write(m.Raw)
		return MessageIDFromHash(h)
	}
	sum := sha256.Sum256(m.Raw)
	return hex.EncodeToString(sum[:6])
}

// Now returns the verification time (Options.Now: --at, or the current
// time), for the verdicts of messages that never reach Verify, such as a
// file that could not be read.
func (p *Pipeline) Now() time.Time { return p.opts.Now() }

// NewMessageIDHash returns the hash MessageIDFor derives the id of a
// message from, for a message that is not held whole (one too large):
// write its bytes to it, then call MessageIDFromHash. mboxIndex is its
// Message.MboxIndex.
func NewMessageIDHash(mboxIndex int) hash.Hash {
	h := sha256.New()
	if mboxIndex > 0 {
		h.Write([]byte("certharvest mbox message " + strconv.Itoa(mboxIndex) + "\x00"))
	}
	return h
}

// MessageIDFromHash returns the id of the message written to h, a hash
// from NewMessageIDHash.
func MessageIDFromHash(h hash.Hash) string {
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:6])
}

// Verify runs every check on m and, when all pass, stores the certificate.
// It never panics; an unexpected failure is reported as
// ReasonInternalError.
func (p *Pipeline) Verify(ctx context.Context, m *Message) (res *Result) {
	start := time.Now()
	res = &Result{ID: MessageIDFor(m), At: p.opts.Now()}
	log := &story{mu: &p.logMu, id: res.ID, prefix: p.opts.BlockPrefix}
	if p.opts.Logger != nil {
		log.handler = p.opts.Logger.Handler()
		log.pool = &p.records
		log.cache = &p.stories
	}
	defer log.flush(ctx)
	defer func() {
		if r := recover(); r != nil {
			res.Reason, res.Detail = ReasonInternalError, fmt.Sprintf("panic: %v", r)
			log.Error("internal error: please report it", "panic", r, "stack", string(debug.Stack()))
		}
		res.Duration = time.Since(start)
	}()

	if log.enabled() {
		log.Info(describeMessage(m), "bytes", len(m.Raw))
	}
	err := p.run(ctx, m, res, log)
	res.Reason = ReasonOf(err)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Err != nil {
			res.Detail = sanitize(e.Err.Error(), maxDetail)
		} else {
			res.Detail = sanitize(err.Error(), maxDetail)
		}
		log.Warn("rejected: "+string(res.Reason)+": "+res.Detail, "reason", string(res.Reason))
	} else if res.Action == "" {
		// No store (check without --certs): nothing was written.
		res.Detail = "certificate for " + res.From + " would be stored; nothing was written (no certificate folder)"
		log.Info("accepted: "+res.Detail, "reason", string(res.Reason))
	} else {
		res.Detail = "certificate " + string(res.Action) + " for " + res.From
		log.Info("accepted: "+res.Detail, "reason", string(res.Reason), "action", string(res.Action))
	}
	return res
}

func (p *Pipeline) run(ctx context.Context, m *Message, res *Result, log *story) error {
	clock := &stageClock{res: res, start: time.Now()}
	msg, err := parseMessage(m.Raw, p.opts.MaxSize, p.opts.HeaderLimits)
	clock.done(StageParse)
	if err != nil {
		return err
	}
	// The report carries it: bounded as a header line is (RFC 5322
	// §2.1.1), so a sender cannot make a report line a megabyte long.
	res.MessageID = truncate(strings.TrimSpace(msg.header.Get("Message-Id")), maxMessageIDLen)

	from, err := fromAddress(msg)
	clock.done(StageFrom)
	if err != nil {
		return err
	}
	res.From = from
	log.Info("from="+from, "message_id", truncate(res.MessageID, 200))

	res.DKIM, err = p.checkDKIM(ctx, msg, from, log)
	clock.done(StageDKIM)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fail(ReasonDKIMTempError, "interrupted: %w", err)
	}

	entity, err := locateSignature(msg, log)
	clock.done(StageLocate)
	if err != nil {
		return err
	}
	var cms *signedCMS
	if p.opts.Reference {
		cms, err = verifyCMSReference(entity, log)
	} else {
		cms, err = verifyCMS(entity, &p.cms, log)
	}
	clock.done(StageCMS)
	if err != nil {
		return err
	}

	// Each signer must chain and match From; with several signers (rare:
	// RSA and ECDSA side by side), the first that does is the one kept.
	var firstErr error
	signerIndex := 0
	for i, signer := range cms.signers {
		res.Cert, res.CertInfo = signer, p.describe(signer)
		chain, err := p.verifyChain(signer, cms.bag, res.At, log)
		clock.done(StageChain)
		if err == nil {
			err = checkIdentity(signer, from, log)
			clock.done(StageIdentity)
		}
		if err == nil {
			res.Chain = chain
			firstErr, signerIndex = nil, i
			break
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return firstErr
	}
	err = p.checkProfile(res, log)
	clock.done(StageProfile)
	if err != nil {
		return err
	}

	// The certificate to encrypt to (enccert.go), and what the sender
	// can read, from the signed attributes the signature covers.
	attrs := cms.smimeAttributes(signerIndex)
	res.Capabilities = attrs.capabilities
	enc, encChain, err := p.encryptionCert(res.Cert, cms.bag, &attrs, from, res.At, log)
	clock.done(StageIdentity)
	if err != nil {
		return err
	}
	set := CertSet{Encryption: enc, Capabilities: res.Capabilities}
	res.EncCert, res.EncCertInfo = enc, res.CertInfo
	if enc != res.Cert {
		set.Signing = res.Cert
		res.EncCertInfo = p.describe(enc)
	}

	// Both chains pass revocation: the signer's, and the encryption
	// certificate's when it is another (the chosen certificate passes
	// every check the signer's does).
	err = p.revocationStage(ctx, res.Chain, encChain, res, log)
	clock.done(StageRevocation)
	if err != nil {
		return err
	}

	if p.opts.Store == nil {
		log.Info("no certificate folder: nothing written")
		return nil
	}
	stored, err := p.opts.Store.StoreSet(context.WithValue(ctx, storingKey{}, res.ID), from, set)
	clock.done(StageStore)
	if errors.Is(err, ReasonStoreRefused) {
		// Not the sender's doing, and no retry helps: see the reason.
		return fail(ReasonStoreRefused, "storing the certificate of %s: %w", from, err)
	}
	if err != nil {
		return fail(ReasonStoreFailed, "storing the certificate of %s: %w", from, err)
	}
	res.Action, res.CertFile, res.SignCertFile = stored.Action, stored.Path, stored.SignPath
	switch stored.Action {
	case ActionStored:
		log.Info("written file " + stored.Path + ",bytes=" + strconv.Itoa(stored.Bytes) + ",ok=True")
		if stored.SignPath != "" {
			log.Info("signing certificate kept beside it: " + stored.SignPath)
		}
	case ActionUnchanged:
		log.Info("file " + stored.Path + " already holds this certificate: unchanged")
	case ActionKeptExisting:
		log.Info("file " + stored.Path + " holds a certificate as new or newer (NotBefore): kept it")
	}
	return nil
}

// maxDetail bounds a report detail; hostile input can make errors long.
const maxDetail = 500

// sanitize makes untrusted text safe for a log line or report: control
// characters and invalid UTF-8 are escaped, and it is cut to about n bytes.
func sanitize(s string, n int) string {
	var b strings.Builder
	for len(s) > 0 {
		if b.Len() >= n {
			b.WriteString("…")
			break
		}
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "\\x%02x", s[0])
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}

// describeMessage is the first line of a message's story.
func describeMessage(m *Message) string {
	var b strings.Builder
	b.Grow(64 + len(m.Path))
	b.WriteString("Message from ")
	b.WriteString(orDash(m.Source))
	if m.Path != "" {
		b.WriteString(",path=")
		b.WriteString(m.Path)
	}
	if m.MboxIndex > 0 {
		b.WriteString(",mbox_index=")
		b.WriteString(strconv.Itoa(m.MboxIndex))
		b.WriteString(",mbox_offset=")
		b.WriteString(strconv.FormatInt(m.MboxOffset, 10))
	}
	if m.RemoteAddr != "" {
		b.WriteString(",remote=")
		b.WriteString(m.RemoteAddr)
	}
	if m.EnvelopeFrom != "" || len(m.EnvelopeTo) > 0 {
		b.WriteString(",msg_from=")
		b.WriteString(m.EnvelopeFrom)
		b.WriteString(",rcpt_to=")
		for i, to := range m.EnvelopeTo {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(to)
		}
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
