package mbox

import (
	"bytes"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/certharvest/certharvest/verify"
)

// ErrNotMbox is the error of a file that does not begin with a "From "
// line: not an mbox.
var ErrNotMbox = errors.New(`not an mbox file: it does not begin with a "From " line`)

// ReaderOptions say how a Reader reads. The zero value of each field means
// its default.
type ReaderOptions struct {
	// Format is the file's variant; Auto decides by the first message:
	// mboxcl2 when it has a Content-Length field that ends it exactly at
	// the next "From " line or at the end of the file, else mboxrd.
	Format Format
	// MaxSize is the largest message kept (its bytes unquoted); a larger
	// one is TooLarge, and never held. Default verify.DefaultMaxSize.
	MaxSize int64
	// Digest, when set, returns the hash a message too large is written
	// to (its first MaxDigest bytes, unquoted), to identify it; index is
	// the message's.
	Digest    func(index int) hash.Hash
	MaxDigest int64 // 0: every byte
	// MaxSkip, when set, bounds the bytes of one message (as stored) that
	// are read through: past it, the message is TooLarge and the reading
	// stops, the next Next returning a Message whose Err wraps
	// ErrStopped. A compressed file needs it: a few kilobytes of gzip
	// can inflate to gigabytes without a "From " line.
	MaxSkip int64
	// Discard keeps no message's bytes (counting the messages): Raw is
	// nil, Digest is not called.
	Discard bool
}

// ErrStopped is wrapped by the error of the Message that stands for the
// rest of a file not read, past a message over ReaderOptions.MaxSkip.
var ErrStopped = errors.New("the rest of the file is not read")

// Message is one message of an mbox, as Reader.Next returns it.
type Message struct {
	// Index is its number in the file, from 1; Offset the offset of its
	// "From " line (in the bytes read: a compressed file's decompressed
	// bytes).
	Index  int
	Offset int64
	// Raw is the message, unquoted, without the "From " line and the
	// blank line after it; nil when TooLarge, or Err, or with Discard.
	Raw []byte
	// Size is its size (unquoted); for a message TooLarge, the bytes
	// counted before it was cut off (more than MaxSize).
	Size     int64
	TooLarge bool
	// Digest is the sum of ReaderOptions.Digest's hash for a message
	// TooLarge.
	Digest []byte
	// Err, when set, is why the message could not be read: its
	// Content-Length does not end it at a "From " line, the file could
	// not be read further, or (ErrStopped) the reading stopped before it.
	Err error
}

// Reader reads the messages of an mbox from a stream, in order. It holds
// the message being read, up to MaxSize, and a window of the file; when
// the stream is also an io.ReaderAt (a file), a Content-Length is checked
// there rather than by reading ahead.
type Reader struct {
	src  io.Reader
	at   io.ReaderAt // src, when it is one
	opts ReaderOptions

	format Format // decided with the first message when Auto
	buf    []byte
	r, w   int   // buf[r:w]: read, not yet consumed
	base   int64 // offset of buf[0] in the stream
	eof    bool  // no more to read than buf[r:w]
	rerr   error // the stream's error other than io.EOF

	index   int
	started bool
	done    bool  // nothing more: Next returns io.EOF
	stopped error // the last Message to return, then done
}

// bufSize is the window's usual size; it grows for a message whose
// Content-Length is checked by reading ahead.
const bufSize = 1 << 20

// holdBack is how many bytes of the window's end stay unconsumed while a
// message runs on past it: a "From " line's "\nFrom" (5 bytes) and the blank
// line before it ("\n\r\n") are then still in the window when it is found.
const holdBack = 8

// maxHeader bounds the header looked through for a Content-Length; a larger
// header is read as one without.
const maxHeader = verify.DefaultMaxHeaderBytes

// NewReader returns a Reader of the mbox read from src.
func NewReader(src io.Reader, opts ReaderOptions) *Reader {
	if opts.MaxSize <= 0 {
		opts.MaxSize = verify.DefaultMaxSize
	}
	r := &Reader{src: src, opts: opts, format: opts.Format, buf: make([]byte, bufSize)}
	r.at, _ = src.(io.ReaderAt)
	return r
}

// Format returns the file's variant: as chosen, or once the first message
// is read, as detected.
func (r *Reader) Format() Format { return r.format }

// Next returns the next message, or io.EOF after the last. A file that does
// not begin with a "From " line is ErrNotMbox (an empty file has no
// messages); a failure to read the stream before the first message is
// returned as it is. After those, every problem is a Message's Err, and
// the Message after one that could not be read through is the last.
func (r *Reader) Next() (*Message, error) {
	if r.done {
		return nil, io.EOF
	}
	if r.stopped != nil {
		r.done = true
		return &Message{Index: r.index + 1, Offset: r.offset(), Err: r.stopped}, nil
	}
	if !r.started {
		r.started = true
		r.fill(len(fromSpace))
		if r.avail() == 0 {
			r.done = true
			if r.rerr != nil {
				return nil, r.rerr
			}
			return nil, io.EOF
		}
		if !bytes.HasPrefix(r.buf[r.r:r.w], fromSpace) {
			r.done = true
			if r.rerr != nil {
				return nil, r.rerr
			}
			return nil, ErrNotMbox
		}
	}
	if r.avail() == 0 {
		r.fill(1)
		if r.avail() == 0 {
			r.done = true
			return nil, io.EOF
		}
	}
	r.index++
	m := &Message{Index: r.index, Offset: r.offset()}
	// The "From " line.
	if !r.skipLine() {
		return r.fail(m), nil
	}
	if r.format == Auto {
		r.format = r.detect()
	}
	if r.format == CL2 {
		r.readCL2(m)
	} else {
		r.readToFrom(m, r.newSink(m, r.format))
	}
	return m, nil
}

// offset is the stream's offset of the next byte to consume.
func (r *Reader) offset() int64 { return r.base + int64(r.r) }

func (r *Reader) avail() int { return r.w - r.r }

// fill reads until at least n bytes are unconsumed, or the stream ends;
// the window grows as needed.
func (r *Reader) fill(n int) {
	for empty := 0; r.avail() < n && !r.eof; {
		if r.r > 0 && (r.w == len(r.buf) || n > len(r.buf)-r.r) {
			// Move the unconsumed bytes to the front; a window grown
			// for a message checked ahead shrinks back.
			dst := r.buf
			if len(r.buf) > bufSize && max(n, r.avail()) <= bufSize {
				dst = make([]byte, bufSize)
			}
			copy(dst, r.buf[r.r:r.w])
			r.buf = dst
			r.base += int64(r.r)
			r.w -= r.r
			r.r = 0
		}
		if n > len(r.buf) {
			nb := make([]byte, max(n, 2*len(r.buf)))
			copy(nb, r.buf[:r.w])
			r.buf = nb
		}
		k, err := r.src.Read(r.buf[r.w:])
		r.w += k
		if k == 0 && err == nil {
			if empty++; empty >= 100 {
				err = io.ErrNoProgress
			}
		}
		if err != nil {
			r.eof = true
			if !errors.Is(err, io.EOF) {
				r.rerr = err
			}
		}
	}
}

// more reads more bytes into the window, keeping those unconsumed; false
// once the stream has ended.
func (r *Reader) more() bool {
	if r.eof {
		return false
	}
	before := r.avail()
	r.fill(before + 1)
	return r.avail() > before
}

// consume moves past n bytes.
func (r *Reader) consume(n int) { r.r += n }

// fail makes m the message at which reading stopped: the stream's error.
func (r *Reader) fail(m *Message) *Message {
	err := r.rerr
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	m.Err = fmt.Errorf("message %d at byte %d: %w", m.Index, m.Offset, err)
	r.done = true
	return m
}

// skipLine consumes the rest of the current line; false when the stream
// failed before its end (its end at the end of the stream is fine).
func (r *Reader) skipLine() bool {
	for {
		if i := bytes.IndexByte(r.buf[r.r:r.w], '\n'); i >= 0 {
			r.consume(i + 1)
			return true
		}
		r.consume(r.avail())
		if !r.more() {
			return r.rerr == nil
		}
	}
}

// newSink returns the sink of message m's bytes, unquoted as format says.
func (r *Reader) newSink(m *Message, format Format) *sink {
	var digest func() hash.Hash
	if r.opts.Digest != nil && !r.opts.Discard {
		digest = func() hash.Hash { return r.opts.Digest(m.Index) }
	}
	return newSink(format, r.opts.MaxSize, r.opts.Discard, digest, r.opts.MaxDigest)
}

// end gives m what s received.
func (r *Reader) end(m *Message, s *sink) {
	s.finish()
	m.Size = s.size
	m.TooLarge = s.tooLarge
	if s.tooLarge {
		if s.digest != nil {
			m.Digest = s.digest.Sum(nil)
		}
	} else {
		m.Raw = s.raw
	}
}

// isFrom reports whether b, at the start of a line, begins a "From " line;
// unknown (false) when b is shorter than that.
func isFrom(b []byte) bool { return bytes.HasPrefix(b, fromSpace) }

// readToFrom reads message m up to the next "From " line (or the end of the
// file) into s, without its final blank line.
func (r *Reader) readToFrom(m *Message, s *sink) {
	r.fill(len(fromSpace))
	if isFrom(r.buf[r.r:r.w]) {
		// Another "From " line at once: an empty message.
		r.end(m, s)
		return
	}
	var stored int64  // bytes of m given to s
	search := r.r + 1 // where "From " may begin, not looked at yet
	for {
		if p := r.nextFrom(search); p >= 0 {
			keep := withoutBlankLine(r.buf[r.r:p], stored > 0)
			if stored == 0 {
				s.whole(r.buf[r.r : r.r+keep])
			} else {
				s.write(r.buf[r.r : r.r+keep])
			}
			r.consume(p - r.r)
			r.end(m, s)
			return
		}
		if r.eof {
			if r.rerr != nil {
				r.fail(m)
				return
			}
			keep := withoutBlankLine(r.buf[r.r:r.w], stored > 0)
			if stored == 0 {
				s.whole(r.buf[r.r : r.r+keep])
			} else {
				s.write(r.buf[r.r : r.r+keep])
			}
			r.consume(r.avail())
			r.end(m, s)
			return
		}
		// Give s all but the last few bytes, which may begin the next
		// "From " line or be the blank line before it.
		if n := r.avail() - holdBack; n > 0 {
			s.write(r.buf[r.r : r.r+n])
			r.consume(n)
			stored += int64(n)
		}
		if r.opts.MaxSkip > 0 && stored > r.opts.MaxSkip {
			r.stop(m, s)
			return
		}
		search = max(r.r+1, r.w-len("From")) - r.r
		r.more() // may move the window
		search += r.r
	}
}

// nextFrom returns where in the window the next "From " line begins, after
// the current position, looking from search on; -1 if none is in the
// window yet. It looks for "From " rather than "\nFrom ": a capital F is
// much rarer than a newline, and the search jumps from one to the next.
func (r *Reader) nextFrom(search int) int {
	for search < r.w {
		j := bytes.Index(r.buf[search:r.w], fromSpace)
		if j < 0 {
			return -1
		}
		p := search + j
		if r.buf[p-1] == '\n' {
			return p
		}
		search = p + 1
	}
	return -1
}

// stop ends m, over MaxSkip, as the last message read.
func (r *Reader) stop(m *Message, s *sink) {
	r.end(m, s)
	m.TooLarge = true
	m.Raw = nil
	r.stopped = fmt.Errorf("%w: message %d at byte %d is over %d bytes", ErrStopped, m.Index, m.Offset, r.opts.MaxSkip)
}

// withoutBlankLine returns the length of the region b, the bytes of a
// message up to the next "From " line or the end of the file, without the
// blank line that ends it, if it ends in one (a last line "\n" or "\r\n").
// more says bytes of the message came before b, so that b's start is not
// its start.
func withoutBlankLine(b []byte, more bool) int {
	k := len(b)
	if k == 0 || b[k-1] != '\n' {
		return k
	}
	p := k - 1
	if p > 0 && b[p-1] == '\r' {
		p--
	}
	if (p == 0 && !more) || (p > 0 && b[p-1] == '\n') {
		return p
	}
	return k
}
