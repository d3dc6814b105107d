// Command mutate writes a deterministic set of damaged variants of the
// sample messages, for comparing the reports and logs of two builds
// (scripts/same-behaviour.sh) on more than the sample's 31 cases.
//
// Usage:
//
//	go run ./scripts/mutate -out DIR [-n 1615] [-seed 14] [-in testdata/sample/messages]
//
// DIR receives a copy of every original (orig-*.eml) and n mutated
// messages (mNNNN-OPS-SRC.eml: the mutations applied, and the original's
// number): bytes flipped, inserted, removed; truncations; header fields
// duplicated, removed, shadowed, case-changed, folded; From, Message-ID and
// DKIM-Signature values changed; CRLF and LF mixed; boundaries, Content-Type
// and Content-Transfer-Encoding damaged; base64 and the DER under it
// damaged; parts and bodies swapped between messages; and some fixed cases
// at the limits (empty, header only, 10,000 and 10,001 header fields, a
// header around 1 MiB, a message over 25 MiB, symbolic links).
//
// Most damage breaks the DKIM signature, which the pipeline checks before
// the S/MIME signature; so about half of the mutated messages are signed
// again by the mutator's own keys, to reach the later checks. Those keys
// are written with the sample's to DIR/dkim-keys.txt (or -keys-out): scan
// the set with --dkim-keys pointing there.
//
// The same flags give the same files, byte for byte.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

func main() {
	in := flag.String("in", "testdata/sample/messages", "folder of the `.eml` messages to mutate")
	out := flag.String("out", "", "`folder` to write the messages to (created; must be empty)")
	n := flag.Int("n", 1615, "`number` of mutated messages (the originals are copied too)")
	seed := flag.Uint64("seed", 14, "seed of the mutations")
	keys := flag.String("keys", "testdata/sample/dkim-keys.txt", "the sample's DKIM keys `file`, copied into -keys-out")
	keysOut := flag.String("keys-out", "", "DKIM keys `file` to write: -keys and the mutator's keys (default OUT/dkim-keys.txt)")
	big := flag.Bool("big", true, "include a message over the default --max-size (25 MiB + 1 byte)")
	verbose := flag.Bool("v", false, "print how often each mutation was applied")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *keysOut == "" {
		*keysOut = filepath.Join(*out, "dkim-keys.txt")
	}
	if err := run(*in, *out, *keys, *keysOut, *n, *seed, *big, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		os.Exit(1)
	}
}

// source is one original message.
type source struct {
	name string // file name
	tag  string // its number, "01"
	data []byte
}

// mutator draws the mutations.
type mutator struct {
	r      *rand.Rand
	srcs   []source
	signer *signer
	counts map[string]int
}

// newRand is the random source of a seed.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// other returns a copy of a random original.
func (mu *mutator) other() []byte { return bytes.Clone(mu.srcs[mu.r.IntN(len(mu.srcs))].data) }

func run(in, out, keysIn, keysOut string, n int, seed uint64, big, verbose bool) error {
	srcs, err := readSources(in)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("creating the output folder: %w", err)
	}
	if ents, err := os.ReadDir(out); err != nil || len(ents) > 0 {
		return fmt.Errorf("%s: want an empty folder (%v)", out, err)
	}
	s, err := newSigner()
	if err != nil {
		return err
	}
	sampleKeys, err := os.ReadFile(keysIn)
	if err != nil {
		return fmt.Errorf("reading the sample's DKIM keys: %w", err)
	}
	records, err := s.keyRecords()
	if err != nil {
		return err
	}
	if err := os.WriteFile(keysOut, append(append(sampleKeys, '\n'), records...), 0o644); err != nil {
		return fmt.Errorf("writing the DKIM keys: %w", err)
	}
	for _, src := range srcs {
		if err := os.WriteFile(filepath.Join(out, "orig-"+src.name), src.data, 0o644); err != nil {
			return fmt.Errorf("copying an original: %w", err)
		}
	}
	mu := &mutator{r: newRand(seed), srcs: srcs, signer: s, counts: map[string]int{}}
	specials, err := mu.specials(big)
	if err != nil {
		return err
	}
	for i := range n {
		name := fmt.Sprintf("m%04d-", i+1)
		if i < len(specials) {
			sp := specials[i]
			path := filepath.Join(out, name+"special-"+sp.name+".eml")
			if sp.link != "" {
				err = os.Symlink(sp.link, path)
			} else {
				err = os.WriteFile(path, sp.data, 0o644)
			}
			if err != nil {
				return fmt.Errorf("writing a message: %w", err)
			}
			continue
		}
		data, what, err := mu.mutate()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, name+what+".eml"), data, 0o644); err != nil {
			return fmt.Errorf("writing a message: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "mutate: %d messages mutated and %d originals in %s; DKIM keys in %s\n", n, len(srcs), out, keysOut)
	if verbose {
		names := make([]string, 0, len(mu.counts))
		for k := range mu.counts {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(os.Stderr, "%6d %s\n", mu.counts[k], k)
		}
	}
	return nil
}

// readSources reads the .eml files of dir, in name order.
func readSources(dir string) ([]source, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil || len(names) == 0 {
		return nil, fmt.Errorf("no .eml files in %s", dir)
	}
	sort.Strings(names)
	var srcs []source
	for _, p := range names {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading an original: %w", err)
		}
		base := filepath.Base(p)
		tag, _, _ := strings.Cut(base, "-")
		srcs = append(srcs, source{name: base, tag: tag, data: data})
	}
	return srcs, nil
}

// mutate makes one mutated message from a random original: one to three
// mutations, then, half of the time, a new DKIM signature, and now and
// then a change of line endings after it. what names them for the file.
func (mu *mutator) mutate() (data []byte, what string, err error) {
	src := mu.srcs[mu.r.IntN(len(mu.srcs))]
	data = bytes.Clone(src.data)
	var names []string
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	for range mu.pick3(1, 2, 3) {
		for tries := 0; ; tries++ {
			k := mu.r.IntN(total)
			var o op
			for _, o = range ops {
				if k < o.weight {
					break
				}
				k -= o.weight
			}
			if res := o.fn(mu, bytes.Clone(data)); res != nil {
				data = res
				names = append(names, o.name)
				mu.counts[o.name]++
				break
			}
			if tries > 100 {
				return nil, "", fmt.Errorf("no mutation applies to %s", src.name)
			}
		}
	}
	if mu.r.IntN(2) == 0 {
		if data, err = mu.resign(data); err != nil {
			return nil, "", err
		}
		names = append(names, "resign")
		mu.counts["resign"]++
		if mu.r.IntN(8) == 0 {
			data = toLF(data)
			names = append(names, "lf")
		}
	}
	return data, strings.Join(names, "+") + "-" + src.tag, nil
}

// dkimHeaders are the fields the sample signs (testcorpus.DKIMHeaderKeys).
var dkimHeaders = []string{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"}

// resign signs data again with one of the mutator's keys: usually for the
// From domain with a key the keys file has, sometimes not; usually
// replacing the message's signatures, sometimes in addition to them.
func (mu *mutator) resign(data []byte) ([]byte, error) {
	m := parse(data)
	if mu.r.IntN(10) < 7 {
		for idx := m.find("DKIM-Signature"); len(idx) > 0; idx = m.find("DKIM-Signature") {
			m.remove(idx[0])
		}
		data = m.bytes()
	}
	from, _ := m.value("From")
	spec := sigSpec{domain: domainOf(from), selector: selRSA}
	if !slices.Contains(signDomains, spec.domain) || mu.r.IntN(10) == 0 {
		spec.domain = pick(mu, signDomains...)
	}
	switch k := mu.r.IntN(100); {
	case k < 25:
		spec.selector, spec.ed25519 = selEd, true
	case k < 28:
		spec.selector = selTwice
	case k < 31:
		spec.selector = selRevoked
	case k < 34:
		spec.selector = "s1" // the sample's selector: another key
	case k < 36:
		spec.selector = "nosuch"
	}
	spec.simple = mu.r.IntN(4) == 0
	spec.sha1 = !spec.ed25519 && mu.r.IntN(30) == 0
	spec.bodyLength = mu.r.IntN(30) == 0
	dropFrom := mu.r.IntN(40) == 0
	for _, h := range dkimHeaders {
		if h == "From" && !dropFrom || len(m.find(h)) > 0 && h != "From" {
			spec.headers = append(spec.headers, h)
		}
	}
	return mu.signer.sign(data, spec)
}

// domainOf is the domain of the last address in a From value, lower-cased.
func domainOf(from string) string {
	i := strings.LastIndexByte(from, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimRight(from[i+1:], "> ;\t"))
}
