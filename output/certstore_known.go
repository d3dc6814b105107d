package output

import (
	"bytes"
	"crypto/x509"
	"os"
	"sync"
	"time"
)

// The known sender: most messages come from senders whose certificate is
// already stored, and StoreSet then answers ActionUnchanged. Finding it out
// under the lock costs the stripe's mutex, an flock pair, a read and a PEM
// decode of <address>.crt and a failed open of <address>.sign.crt. The
// store remembers instead, per address, the certificate it last read from
// each file and the identity of the file it read it from (fileID: device,
// inode, size, modification and change times in nanoseconds); a StoreSet
// of the same certificates then only checks, with two stat calls and no
// lock, that both files are still the ones it read (knownCerts.unchanged).
//
// Why two stats prove that nothing changed, wherever the change came from
// (this store, another CertStore or process, an operator):
//
//   - certharvest replaces a file by renaming a new one over it, and Retire
//     removes it: another inode, or none. An editor or a cp writing in
//     place keeps the inode but sets its change time (ctime), as does a
//     chmod, a link or a rename of the file. Nothing a process can do sets
//     a ctime back (utimensat sets mtime and atime only), so a file with
//     the inode and the ctime remembered has not changed since it was read;
//     an inode number freed and reused has a new ctime, even for a file of
//     the same size.
//   - A ctime is the file system's clock at a tick (a few milliseconds on
//     Linux; whole seconds on some file systems): a change made in the
//     tick of the read would keep the ctime read. A file read is therefore
//     remembered only when its ctime is older than the read by more than
//     the file system's margin (racyMargin: "racily clean" files, as git
//     calls them, are read again the next time, and remembered then).
//   - The signing file is checked first, then <address>.crt: the second
//     stat proves that <address>.crt was unchanged at the first, so both
//     held what was remembered at one moment, as under the lock.
//   - A write through a shared writable memory mapping changes the content
//     and sets the times only at the first write to each page (Linux's
//     page fault), not at later writes to a page still mapped: a process
//     holding such a mapping could change the file under an unchanged
//     identity. So a file is remembered only when none but certharvest's
//     own user (and root) can write it: the process's effective user owns
//     it, its group and others cannot write it, and it has one name
//     (fileID.writableOnlyBy). A file planted by another user sharing the
//     folder's group is decided under the lock every time.
//   - A stat follows no link (AT_SYMLINK_NOFOLLOW) and accepts only a
//     regular file; anything else is decided under the lock, as before.
//
// The stat must see the changes of other processes and hosts at once:
// the store remembers only on local file systems (knownFileSystem), not on
// NFS, whose client may answer a stat from its attribute cache. It relies
// on the clock not being set back by more than racyMargin between the read
// and a change.

// maxKnownAddresses bounds how many addresses a store remembers (about
// 2 KB each: a certificate or two and their file identities); beyond it,
// an address is forgotten to make room for another.
const maxKnownAddresses = 4096

// knownFile is what one of an address's files held when read: raw, the
// DER of its certificate (nil: the file was absent), and id, the file's
// identity then.
type knownFile struct {
	raw []byte
	id  fileID
}

// knownAddress is what an address's files held when StoreSet last found
// its certificates unchanged.
type knownAddress struct {
	enc  knownFile
	sign knownFile // raw nil: no <address>.sign.crt
}

// knownCerts remembers the certificates of the addresses StoreSet found
// unchanged, to find them unchanged again without the lock. The zero value
// remembers nothing (disabled).
type knownCerts struct {
	// margin is how much older than its read a file's ctime must be for
	// it to be remembered (racyMargin); 0: remember nothing.
	margin time.Duration
	// euid is the process's effective user: only files it alone can
	// write are remembered.
	euid  int
	mu    sync.Mutex
	addrs map[string]knownAddress
}

// init makes k remember for a store in dir, where its file system allows
// (racyMargin): not where it is not known to be local, nor where stat
// cannot tell (not Linux).
func (k *knownCerts) init(dir string) {
	k.margin = racyMargin(dir)
	k.euid = os.Geteuid()
	k.addrs = map[string]knownAddress{}
}

// settled reports whether a file read at seen, of identity id, may be
// remembered: its last change is older than the read by more than the
// margin, so that any later change has another ctime.
func (k *knownCerts) settled(id fileID, seen time.Time) bool {
	return k.margin > 0 && id.writableOnlyBy(k.euid) && id.ctime < seen.Add(-k.margin).UnixNano()
}

// remember records that addr's files held enc and sign (sign.raw nil: no
// signing file), when each file read is settled. The caller holds addr's
// lock and read them under it.
func (k *knownCerts) remember(addr string, enc, sign knownFile, seen time.Time) {
	if k.margin == 0 || !k.settled(enc.id, seen) || sign.raw != nil && !k.settled(sign.id, seen) {
		return
	}
	e := knownAddress{enc: knownFile{raw: bytes.Clone(enc.raw), id: enc.id}}
	if sign.raw != nil {
		e.sign = knownFile{raw: bytes.Clone(sign.raw), id: sign.id}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.addrs[addr]; !ok && len(k.addrs) >= maxKnownAddresses {
		for a := range k.addrs { // an arbitrary one: map order is random
			delete(k.addrs, a)
			break
		}
	}
	k.addrs[addr] = e
}

// forget drops what is remembered of addr: StoreSet or Retire is changing
// its files. (Their new identities would tell anyway; this frees the
// memory at once.)
func (k *knownCerts) forget(addr string) {
	if k.margin == 0 {
		return
	}
	k.mu.Lock()
	delete(k.addrs, addr)
	k.mu.Unlock()
}

// lookup returns what is remembered of addr when it is enc, with sign as
// its signing certificate (nil: none kept beside it).
func (k *knownCerts) lookup(addr string, enc, sign *x509.Certificate) (knownAddress, bool) {
	if k.margin == 0 {
		return knownAddress{}, false
	}
	k.mu.Lock()
	e, ok := k.addrs[addr]
	k.mu.Unlock()
	if !ok || !bytes.Equal(e.enc.raw, enc.Raw) {
		return knownAddress{}, false
	}
	if sign == nil {
		return e, e.sign.raw == nil
	}
	return e, e.sign.raw != nil && bytes.Equal(e.sign.raw, sign.Raw)
}

// unchanged reports whether addr's files in root are still the ones of e,
// the signing file (signName; "" when the address has none) checked
// before <address>.crt (encName).
func (k *knownCerts) unchanged(root folder, encName, signName string, e knownAddress) bool {
	if signName != "" {
		id, exists, ok := root.statID(signName)
		if !ok || exists != (e.sign.raw != nil) || exists && id != e.sign.id {
			return false
		}
	}
	id, exists, ok := root.statID(encName)
	return ok && exists && id == e.enc.id
}
