package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/BurntSushi/toml"
)

// A configuration file sets flags. Its keys are flag names: top-level keys
// apply to every command that has that flag, a [scan], [check], [serve],
// [list] or [show] table to that command only, and flags given on the
// command line override both. TOML was chosen over YAML because its values
// are typed without guessing (YAML reads "no" or 08 as surprises), it has
// comments, and github.com/BurntSushi/toml is small and well kept.
//
//	trust = "/etc/ssl/certs/ca-certificates.crt"
//	certs = "/var/lib/certharvest/certs"
//
//	[serve]
//	maildir = "/var/spool/certharvest"
//	smtp-domain = ["inbound.example.org"]
//
// The original service's webapp.ini (section [webapp]) is read as it is:
// x-messagesystems-webhook-token, user-certs-dir and trusted-certs become
// webhook-token, certs and trust; without user-certs-dir, certs is the
// working directory, as it was for the original service.
type config struct {
	path     string
	global   map[string][]string
	sections map[string]map[string][]string
	// lines holds the line of each key, "key" at the top level and
	// "table.key" in a table, for the messages; a key not found is 0.
	lines map[string]int
	// ignored lists keys of a webapp.ini that certharvest has no use for.
	ignored []string
	// notes are remarks for config check's output.
	notes []string
}

// configCommands returns the commands a configuration file may have a table
// for.
func configCommands() []string {
	return []string{"scan", "check", "serve", "list", "show", "export", "revalidate"}
}

// isSecretFlag reports whether a flag's value is masked when printed.
func isSecretFlag(name string) bool { return name == "webhook-token" || name == "lookup-token" }

// loadConfig reads a TOML configuration file, or a webapp.ini. A file that
// cannot be read is an operational error; a file that is not valid is a
// usage error (exit status 2), as a wrong flag is.
func loadConfig(path string) (*config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	c := &config{path: path, global: map[string][]string{}, sections: map[string]map[string][]string{}, lines: map[string]int{}}
	if isWebappINI(path, data) {
		if err := c.parseWebappINI(bytes.NewReader(data)); err != nil {
			return nil, err
		}
		return c, nil
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, tomlError(path, err)
	}
	c.lines = tomlKeyLines(string(data))
	var problems []configProblem
	for k, v := range raw {
		if table, ok := v.(map[string]any); ok {
			if !isConfigCommand(k) {
				problems = append(problems, configProblem{c.lines["["+k+"]"], fmt.Sprintf("unknown table [%s] in %s%s; want one of %s%s",
					k, path, lineNote(c.lines["["+k+"]"]), strings.Join(configCommands(), ", "), didYouMean(k, configCommands()))})
				continue
			}
			sec := map[string][]string{}
			for kk, vv := range table {
				vals, err := configValues(vv)
				if err != nil {
					line := c.lines[k+"."+kk]
					problems = append(problems, configProblem{line, fmt.Sprintf("[%s] %s in %s%s: %v", k, kk, path, lineNote(line), err)})
					continue
				}
				sec[kk] = vals
			}
			c.sections[k] = sec
			continue
		}
		vals, err := configValues(v)
		if err != nil {
			problems = append(problems, configProblem{c.lines[k], fmt.Sprintf("%s in %s%s: %v", k, path, lineNote(c.lines[k]), err)})
			continue
		}
		c.global[k] = vals
	}
	if err := c.errorOf(problems); err != nil {
		return nil, err
	}
	return c, nil
}

// tomlError describes a TOML syntax error by its position and the last key
// read, never by the parser's message: that quotes the text it stumbled on,
// which can be a secret (a token missing its quotes).
func tomlError(path string, err error) error {
	var perr toml.ParseError
	if !errors.As(err, &perr) {
		return usagef("configuration %s: not valid TOML", path)
	}
	msg := fmt.Sprintf("configuration %s: not valid TOML at line %d, column %d", path, perr.Position.Line, perr.Position.Col)
	if perr.LastKey != "" {
		msg += fmt.Sprintf(" (in or after key %s; is a string value missing its quotes?)", perr.LastKey)
	}
	return usageError{msg}
}

// tomlKeyLines finds the line of each table header ("[table]") and key
// ("key", "table.key") of a TOML file that parsed, for the messages. It is
// a scan, not a parser: it takes a key's first "key =" line.
func tomlKeyLines(data string) map[string]int {
	lines := map[string]int{}
	table := ""
	for i, line := range strings.Split(data, "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "[") && !strings.HasPrefix(l, "[[") {
			if name, _, ok := strings.Cut(l[1:], "]"); ok {
				table = strings.Trim(strings.TrimSpace(name), `"'`)
				if _, seen := lines["["+table+"]"]; !seen {
					lines["["+table+"]"] = i + 1
				}
				continue
			}
		}
		k, _, ok := strings.Cut(l, "=")
		if !ok || strings.HasPrefix(l, "#") {
			continue
		}
		id := strings.Trim(strings.TrimSpace(k), `"'`)
		if table != "" {
			id = table + "." + id
		}
		if _, seen := lines[id]; !seen {
			lines[id] = i + 1
		}
	}
	return lines
}

// configProblem is one thing wrong in a configuration file.
type configProblem struct {
	line int
	msg  string
}

// errorOf returns the problems as one usage error (exit status 2), each
// once, in the order of the file; nil for none.
func (c *config) errorOf(problems []configProblem) error {
	sort.Slice(problems, func(i, j int) bool {
		if problems[i].line != problems[j].line {
			return problems[i].line < problems[j].line
		}
		return problems[i].msg < problems[j].msg
	})
	var msgs []string
	seen := map[string]bool{}
	for _, p := range problems {
		if !seen[p.msg] {
			seen[p.msg] = true
			msgs = append(msgs, p.msg)
		}
	}
	switch len(msgs) {
	case 0:
		return nil
	case 1:
		return usageError{msgs[0]}
	}
	return usagef("configuration %s has %d problems:\n  %s", c.path, len(msgs), strings.Join(msgs, "\n  "))
}

// lineNote is " (line N)", or "" for an unknown line.
func lineNote(line int) string {
	if line == 0 {
		return ""
	}
	return fmt.Sprintf(" (line %d)", line)
}

// where says where a key is: "FILE (line N)", or "[table] of FILE (line N)".
func (c *config) where(table, key string) string {
	if table == "" {
		return c.path + lineNote(c.lines[key])
	}
	return fmt.Sprintf("[%s] of %s%s", table, c.path, lineNote(c.lines[table+"."+key]))
}

// line returns the line of a key, 0 when unknown.
func (c *config) line(table, key string) int {
	if table == "" {
		return c.lines[key]
	}
	return c.lines[table+"."+key]
}

// checkKeys reports the keys no command has a flag for: at the top level a
// key must be a flag of some command, in a table a flag of that command.
// An unknown key is an error, not ignored: a misspelt "trsut" must not
// fall back to the system roots unnoticed. sets are the commands' flag
// sets (commandFlagSets).
func (c *config) checkKeys(sets map[string]*pflag.FlagSet) []configProblem {
	var problems []configProblem
	all := map[string]bool{}
	for _, fs := range sets {
		for _, name := range configurableFlags(fs) {
			all[name] = true
		}
	}
	for k := range c.global {
		if !all[k] {
			problems = append(problems, configProblem{c.line("", k), fmt.Sprintf("unknown key %s in %s%s",
				k, c.where("", k), didYouMean(k, sortedKeys(all)))})
		}
	}
	for table, sec := range c.sections {
		for k := range sec {
			if fs := sets[table]; fs == nil || !isConfigurable(fs, k) {
				problems = append(problems, c.noSuchFlag(table, k, fs))
			}
		}
	}
	return problems
}

// noSuchFlag is the problem of a key in a command's table that is not a
// flag of the command.
func (c *config) noSuchFlag(table, key string, fs *pflag.FlagSet) configProblem {
	var known []string
	if fs != nil {
		known = configurableFlags(fs)
	}
	return configProblem{c.line(table, key), fmt.Sprintf("unknown key %s in %s: %s has no such flag%s",
		key, c.where(table, key), table, didYouMean(key, known))}
}

// configurableFlags returns the names of the flags of fs a configuration
// file may set: all but --config and --print-config.
func configurableFlags(fs *pflag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		if isConfigurable(fs, f.Name) {
			names = append(names, f.Name)
		}
	})
	return names
}

func isConfigurable(fs *pflag.FlagSet, name string) bool {
	return name != "config" && name != "print-config" && fs.Lookup(name) != nil
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// didYouMean suggests the closest of names to a misspelt one, as
// "; did you mean NAME?", or "" when none is close (an edit distance of
// at most 2, and less than half the name).
func didYouMean(name string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(name, n); d < bestDist && 2*d < len(name) {
			best, bestDist = n, d
		}
	}
	if best == "" {
		return ""
	}
	return "; did you mean " + best + "?"
}

// editDistance is the Damerau-Levenshtein distance (optimal string
// alignment) between a and b: "trsut" is 1 from "trust".
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// commandFlagSets returns the flag set of every command a configuration
// file may have a table for, with the defaults, as each command defines
// them: nothing is run.
func commandFlagSets() map[string]*pflag.FlagSet {
	sets := map[string]*pflag.FlagSet{}
	for _, name := range configCommands() {
		var cmd *command
		switch name {
		case "scan":
			cmd, _ = newScanCommand(io.Discard)
		case "check":
			cmd, _ = newCheckCommand(io.Discard)
		case "serve":
			cmd, _ = newServeCommand(io.Discard)
		case "list":
			cmd, _ = newListCommand(io.Discard)
		case "show":
			cmd, _ = newShowCommand(io.Discard)
		case "export":
			cmd, _ = newExportCommand(io.Discard)
		case "revalidate":
			cmd, _ = newRevalidateCommand(io.Discard)
		default:
			panic("certharvest: no flags for configurable command " + name)
		}
		sets[name] = cmd.fs
	}
	return sets
}

func isConfigCommand(name string) bool {
	for _, c := range configCommands() {
		if c == name {
			return true
		}
	}
	return false
}

// configValues turns a TOML value into flag values: an array sets a
// repeatable flag once per element.
func configValues(v any) ([]string, error) {
	switch v := v.(type) {
	case []any:
		var out []string
		for _, e := range v {
			vals, err := configValues(e)
			if err != nil {
				return nil, err
			}
			out = append(out, vals...)
		}
		return out, nil
	case map[string]any:
		return nil, errors.New("a table is not a flag value")
	case time.Time:
		// An unquoted TOML date-time, for --at.
		return []string{v.Format(time.RFC3339Nano)}, nil
	default:
		return []string{fmt.Sprint(v)}, nil
	}
}

// applyProblems sets, on a command's flags, the configured values of the
// flags the command line did not set. It reports every value the flag
// refuses, and every key of the command's table that is not one of its
// flags.
func (c *config) applyProblems(command string, fs *pflag.FlagSet) []configProblem {
	set := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) { set[f.Name] = f.Changed })
	type value struct {
		table string // "" for a top-level key
		vals  []string
	}
	values := map[string]value{}
	for k, v := range c.global {
		if isConfigurable(fs, k) {
			values[k] = value{"", v}
		}
	}
	var problems []configProblem
	for k, v := range c.sections[command] {
		if !isConfigurable(fs, k) {
			problems = append(problems, c.noSuchFlag(command, k, fs))
			continue
		}
		values[k] = value{command, v}
	}
	for k, v := range values {
		if set[k] {
			continue
		}
		for _, val := range v.vals {
			// The value's own Set, not fs.Set: its error is the value's,
			// without pflag's wrapping, and the flag stays "not given on
			// the command line".
			if err := fs.Lookup(k).Value.Set(val); err != nil {
				key := k
				if v.table != "" {
					key = "[" + v.table + "] " + k
				}
				problems = append(problems, configProblem{c.line(v.table, k), fmt.Sprintf("%s = %q in %s%s: %s",
					key, maskIf(k, val), c.path, lineNote(c.line(v.table, k)), setError(fs.Lookup(k), err))})
				break
			}
		}
	}
	return problems
}

// setError explains why a flag refused a value, in the words the project's
// own flag types use ("want ..."): pflag's types say "must be ...".
func setError(f *pflag.Flag, err error) string {
	msg := err.Error()
	if !strings.HasPrefix(msg, "must be") {
		return msg
	}
	switch typ := f.Value.Type(); {
	case typ == "bool":
		return "want true or false"
	case typ == "duration":
		return "want a duration, like 30s, 5m or 24h"
	case strings.HasPrefix(typ, "float"):
		return "want a number"
	case strings.HasPrefix(typ, "int"), strings.HasPrefix(typ, "uint"):
		return "want a whole number"
	}
	return msg
}

const configUsage = `Usage: certharvest config check FILE

Validate a configuration file (TOML, or the original service's webapp.ini)
and print the effective configuration of every command, secrets masked.
Command-line flags override the file's values.

A configuration file's keys are flag names. Top-level keys apply to every
command that has the flag; a [scan], [check], [serve], [list] or [show]
table applies to that command. Arrays set repeatable flags.

Each value is checked by the flag that takes it, as on the command line.
A key that is no command's flag, or that a command would refuse, is an
error (exit status 2) here and in every command given the file; config
check reports every such key with its line. Keys of a webapp.ini that
certharvest does not use are listed, not refused.

  trust = "/etc/ssl/certs/ca-certificates.crt"
  certs = "/var/lib/certharvest/certs"
  report = "/var/log/certharvest/report.jsonl"

  [serve]
  maildir = "/var/spool/certharvest"
  workers = 4

Use it with any command: certharvest serve --config /etc/certharvest/certharvest.toml
`

func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || slices.ContainsFunc(args, func(a string) bool { return a == "--help" || a == "-h" || a == "help" }) {
		fmt.Fprint(stdout, configUsage)
		if len(args) == 0 {
			return usagef("want: config check FILE")
		}
		return errHelp
	}
	if args[0] != "check" || len(args) != 2 {
		return usagef("want: config check FILE")
	}
	path := args[1]
	c, err := loadConfig(path)
	if err != nil {
		return err
	}
	// Every key is checked as the commands check it: known to some command,
	// and a value its flag accepts (parsed by the flag itself).
	sets := commandFlagSets()
	problems := c.checkKeys(sets)
	for _, name := range configCommands() {
		if fs := sets[name]; fs != nil {
			problems = append(problems, c.applyProblems(name, fs)...)
		}
	}
	if err := c.errorOf(problems); err != nil {
		return err
	}
	var out strings.Builder
	for _, name := range configCommands() {
		var buf, errBuf bytes.Buffer
		code := run(ctx, []string{name, "--config", path, "--print-config"}, &buf, &errBuf)
		if code != exitOK {
			return fmt.Errorf("%s", strings.TrimSpace(errBuf.String()))
		}
		fmt.Fprintf(&out, "[%s]\n%s\n", name, buf.String())
	}
	fmt.Fprintf(stdout, "# %s is valid. Effective configuration, by command:\n\n%s", path, out.String())
	if len(c.ignored) > 0 {
		fmt.Fprintf(stdout, "# keys of %s that certharvest does not use: %s\n", path, strings.Join(c.ignored, ", "))
	}
	for _, note := range c.notes {
		fmt.Fprintf(stdout, "# %s\n", note)
	}
	return nil
}

// printConfig writes every flag of fs with its value, secrets masked.
func printConfig(w io.Writer, fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" || f.Name == "print-config" {
			return
		}
		fmt.Fprintf(w, "%s = %q\n", f.Name, maskIf(f.Name, f.Value.String()))
	})
}

func maskIf(flagName, value string) string {
	if flagName == "store" {
		return redactStorePassword(value)
	}
	if isSecretFlag(flagName) && value != "" {
		return "********"
	}
	return value
}
