package main

// The original service's configuration file, webapp.ini, read as it is, so
// that a migrated service keeps its settings (see config.go).

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
)

// webappFlag maps a key of the original service's configuration to a flag.
func webappFlag(key string) (string, bool) {
	switch key {
	case "x-messagesystems-webhook-token":
		return "webhook-token", true
	case "user-certs-dir":
		return "certs", true
	case "trusted-certs":
		return "trust", true
	}
	return "", false
}

// isWebappINI reports whether a configuration file is the original
// service's: named *.ini, or with a [webapp] section (which no TOML
// configuration of certharvest can have).
func isWebappINI(path string, data []byte) bool {
	if strings.HasSuffix(path, ".ini") {
		return true
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "[webapp]" {
			return true
		}
	}
	return false
}

// parseWebappINI reads the [webapp] section of the original service's
// configuration as Python's configparser does: key = value or key: value,
// keys case-insensitive; comment lines start with # or ; (no inline
// comments); a line indented deeper than its key continues the value
// (joined with newlines, blank lines kept inside, trailing ones dropped);
// and the keys of [DEFAULT] apply to every section that does not set them.
//
// The original service wrote certificates to the working directory when
// user-certs-dir was not set or empty; so does certharvest with such a
// file, for a migrated service to keep its folder.
func (c *config) parseWebappINI(r io.Reader) error {
	type entry struct {
		key, value string
		line       int
		blanks     int // blank lines since the value's last line
	}
	sections := map[string]map[string]*entry{}
	var (
		section string
		cur     *entry // the value that a deeper-indented line continues
		indent  int    // the indentation of cur's key
	)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" {
			if cur != nil {
				cur.blanks++
			}
			continue
		}
		if line[0] == '#' || line[0] == ';' {
			continue
		}
		lineIndent := len(raw) - len(strings.TrimLeft(raw, " \t"))
		if cur != nil && lineIndent > indent {
			cur.value += strings.Repeat("\n", cur.blanks+1) + line
			cur.blanks = 0
			continue
		}
		cur = nil
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i < 0 {
			return usagef("configuration %s line %d: want key = value", c.path, n)
		}
		key := strings.ToLower(strings.TrimSpace(line[:i]))
		if sections[section] == nil {
			sections[section] = map[string]*entry{}
		}
		cur = &entry{key: key, value: strings.TrimSpace(line[i+1:]), line: n}
		indent = lineIndent
		sections[section][key] = cur
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("configuration %s: %w", c.path, err)
	}

	// The [webapp] section as configparser presents it: its own keys,
	// then those of [DEFAULT] it does not set.
	var entries []*entry
	for _, e := range sections["webapp"] {
		entries = append(entries, e)
	}
	for k, e := range sections["DEFAULT"] {
		if sections["webapp"][k] == nil {
			entries = append(entries, e)
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].line < entries[j].line })
	var problems []configProblem
	for _, e := range entries {
		flagName, ok := webappFlag(e.key)
		if !ok {
			c.ignored = append(c.ignored, e.key)
			continue
		}
		c.lines[flagName] = e.line
		switch {
		case strings.Contains(e.value, "\n"):
			// Never a usable folder, file or token; the value is not
			// printed, as it may be the token.
			problems = append(problems, configProblem{e.line, fmt.Sprintf("%s in %s (line %d): a value continued over several lines is not a usable %s",
				e.key, c.path, e.line, map[string]string{"certs": "folder", "trust": "file", "webhook-token": "token"}[flagName])})
		case e.value != "":
			c.global[flagName] = []string{e.value}
		}
	}
	if _, ok := c.global["certs"]; !ok {
		c.global["certs"] = []string{"."}
		c.notes = append(c.notes, "user-certs-dir is not set: certificates go to the working directory (.), as with the original service")
	}
	return c.errorOf(problems)
}
