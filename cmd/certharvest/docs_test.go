package main

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// TestDocLinks checks that every relative link of README.md and docs/*.md
// names a file that exists, and that every #anchor names a heading of its
// file, so that text moved between them stays reachable.
func TestDocLinks(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join(root, "README.md")}, files...)
	problems, links := mdCheckLinks(files)
	for _, p := range problems {
		t.Error(p)
	}
	if links < 20 {
		t.Errorf("found only %d relative links in %d files: is the link parser broken?", links, len(files))
	}
}

// TestDocLinksCatchBroken runs the checker on files with known broken
// links, so that TestDocLinks cannot pass by checking nothing.
func TestDocLinksCatchBroken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.md", "# Title\n\n## The spool's archive: kept, and for how long\n\n"+
		"## `scan` — flags\n\n## Again\n\n## Again\n\n"+
		"Good: [b](b.md), [b's part](b.md#part-two), [here](#the-spools-archive-kept-and-for-how-long),\n"+
		"[code](#scan--flags), [dup](#again-1), [web](https://example.org/x.md), [mail](mailto:a@b),\n"+
		"and [a link over\ntwo lines](b.md).\n\n"+
		"Broken: [gone](missing.md), [no anchor](b.md#part-three), [self](#nowhere).\n\n"+
		"```sh\n# not a heading\n[not a link](nothing.md)\n```\n\n"+
		"Code spans are not links: `[x](nothing.md)`.\n\n[ref]: alsomissing.md\n")
	write("b.md", "# B\n\n## Part two\n")
	problems, links := mdCheckLinks([]string{a})
	want := []string{
		"missing.md: no such file",
		"b.md#part-three: no heading",
		"#nowhere: no heading",
		"alsomissing.md: no such file",
	}
	if links != 10 {
		t.Errorf("counted %d relative links, want 10", links)
	}
	if len(problems) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(problems), len(want), strings.Join(problems, "\n"))
	}
	for _, w := range want {
		found := false
		for _, p := range problems {
			found = found || strings.Contains(p, w)
		}
		if !found {
			t.Errorf("no problem reported for %q in:\n%s", w, strings.Join(problems, "\n"))
		}
	}
	if got := mdSlug("Hardening II (2026-12-07): no slower"); got != "hardening-ii-2026-12-07-no-slower" {
		t.Errorf("mdSlug = %q", got)
	}
}

var (
	// mdLinkRE matches an inline link or image: [text](target "title").
	mdLinkRE = regexp.MustCompile(`!?\[[^\[\]]*\]\(\s*<?([^()\s<>]*)>?(?:\s+"[^"]*")?\s*\)`)
	// mdRefRE matches a link reference definition: [label]: target.
	mdRefRE = regexp.MustCompile(`(?m)^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)`)
	// mdHeadingRE matches an ATX heading.
	mdHeadingRE = regexp.MustCompile(`^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$`)
)

// mdDoc is a Markdown file cut into its prose paragraphs (fenced code left
// out) and the anchors its headings make.
type mdDoc struct {
	paragraphs []mdParagraph
	anchors    map[string]bool
}

type mdParagraph struct {
	line int // of its first line, from 1
	text string
}

// mdParse reads a Markdown file: its paragraphs (consecutive lines outside
// fenced code, joined, code spans removed) and its heading anchors, as
// GitHub makes them (a repeated one gets -1, -2, ...).
func mdParse(text string) mdDoc {
	doc := mdDoc{anchors: map[string]bool{}}
	seen := map[string]int{}
	var fence string
	var para []string
	start := 0
	flush := func() {
		if len(para) > 0 {
			doc.paragraphs = append(doc.paragraphs, mdParagraph{start, mdStripCode(strings.Join(para, "\n"))})
			para = nil
		}
	}
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimLeft(line, " \t")
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			flush()
			fence = trimmed[:3]
			continue
		}
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if m := mdHeadingRE.FindStringSubmatch(line); m != nil {
			flush()
			slug := mdSlug(m[1])
			if n := seen[slug]; n > 0 {
				doc.anchors[slug+"-"+strconv.Itoa(n)] = true
			} else {
				doc.anchors[slug] = true
			}
			seen[slug]++
		}
		if len(para) == 0 {
			start = i + 1
		}
		para = append(para, line)
	}
	flush()
	return doc
}

// mdStripCode removes the code spans of s (a run of backticks up to the
// next run of the same length), whose brackets are no links.
func mdStripCode(s string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '`')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		n := len(s[i:]) - len(strings.TrimLeft(s[i:], "`"))
		tick := s[i : i+n]
		rest := s[i+n:]
		j := strings.Index(rest, tick)
		for j >= 0 && j+n < len(rest) && rest[j+n] == '`' {
			k := strings.Index(rest[j+n:], tick)
			if k < 0 {
				j = -1
				break
			}
			j += n + k
		}
		if j < 0 {
			b.WriteString(tick) // a lone run of backticks is text
			s = rest
			continue
		}
		b.WriteByte(' ')
		s = rest[j+n:]
	}
}

// mdSlug is the anchor GitHub makes of a heading: lower case, spaces to
// '-', every other character but letters, digits, '-' and '_' dropped.
func mdSlug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mdCheckLinks checks the relative links and anchors of files, and returns
// one line per broken link and the number of relative links checked.
func mdCheckLinks(files []string) (problems []string, links int) {
	docs := map[string]*mdDoc{}
	load := func(path string) (*mdDoc, error) {
		if d, ok := docs[path]; ok {
			return d, nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		d := mdParse(string(data))
		docs[path] = &d
		return &d, nil
	}
	for _, file := range files {
		doc, err := load(file)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		for _, p := range doc.paragraphs {
			var targets []string
			for _, m := range mdLinkRE.FindAllStringSubmatch(p.text, -1) {
				targets = append(targets, m[1])
			}
			for _, m := range mdRefRE.FindAllStringSubmatch(p.text, -1) {
				targets = append(targets, m[1])
			}
			for _, target := range targets {
				if target == "" || strings.HasPrefix(target, "http://") ||
					strings.HasPrefix(target, "https://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				links++
				if msg := mdCheckTarget(file, target, doc, load); msg != "" {
					problems = append(problems, file+":"+strconv.Itoa(p.line)+": "+target+": "+msg)
				}
			}
		}
	}
	return problems, links
}

// mdCheckTarget checks one relative link of file; "" when it resolves.
func mdCheckTarget(file, target string, doc *mdDoc, load func(string) (*mdDoc, error)) string {
	u, err := url.Parse(target)
	if err != nil {
		return "not a URL: " + err.Error()
	}
	if u.Scheme != "" || u.Host != "" {
		return "unexpected scheme " + u.Scheme
	}
	dest := doc
	if u.Path != "" {
		path := filepath.Join(filepath.Dir(file), filepath.FromSlash(u.Path))
		if _, err := os.Stat(path); err != nil {
			return "no such file"
		}
		if u.Fragment == "" {
			return ""
		}
		if !strings.HasSuffix(path, ".md") {
			return "an anchor in a file that is not Markdown"
		}
		if dest, err = load(path); err != nil {
			return err.Error()
		}
	}
	if u.Fragment != "" && !dest.anchors[u.Fragment] {
		return "no heading makes this anchor"
	}
	return ""
}
