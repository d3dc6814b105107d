package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

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
// webhook-token, certs and trust.
type config struct {
	path     string
	global   map[string][]string
	sections map[string]map[string][]string
	// ignored lists keys of a webapp.ini that certharvest has no use for.
	ignored []string
}

// configCommands returns the commands a configuration file may have a table
// for.
func configCommands() []string { return []string{"scan", "check", "serve", "list", "show"} }

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

// isSecretFlag reports whether a flag's value is masked when printed.
func isSecretFlag(name string) bool { return name == "webhook-token" || name == "lookup-token" }

// loadConfig reads a TOML configuration file, or a webapp.ini.
func loadConfig(path string) (*config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	c := &config{path: path, global: map[string][]string{}, sections: map[string]map[string][]string{}}
	if strings.HasSuffix(path, ".ini") || bytes.HasPrefix(bytes.TrimSpace(data), []byte("[webapp]")) {
		return c, c.parseWebappINI(bytes.NewReader(data))
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, fmt.Errorf("configuration %s: %w", path, err)
	}
	for k, v := range raw {
		if table, ok := v.(map[string]any); ok {
			if !isConfigCommand(k) {
				return nil, fmt.Errorf("configuration %s: unknown table [%s]; want one of %s", path, k, strings.Join(configCommands(), ", "))
			}
			sec := map[string][]string{}
			for kk, vv := range table {
				vals, err := configValues(vv)
				if err != nil {
					return nil, fmt.Errorf("configuration %s: [%s] %s: %w", path, k, kk, err)
				}
				sec[kk] = vals
			}
			c.sections[k] = sec
			continue
		}
		vals, err := configValues(v)
		if err != nil {
			return nil, fmt.Errorf("configuration %s: %s: %w", path, k, err)
		}
		c.global[k] = vals
	}
	return c, nil
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
	default:
		return []string{fmt.Sprint(v)}, nil
	}
}

// parseWebappINI reads the [webapp] section of the original service's
// configuration (Python configparser syntax: key = value or key: value,
// # and ; comments).
func (c *config) parseWebappINI(r io.Reader) error {
	sc := bufio.NewScanner(r)
	section := ""
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i < 0 {
			return fmt.Errorf("configuration %s line %d: want key = value", c.path, n)
		}
		if section != "webapp" {
			continue
		}
		key := strings.ToLower(strings.TrimSpace(line[:i]))
		value := strings.TrimSpace(line[i+1:])
		if flagName, ok := webappFlag(key); ok {
			if value != "" {
				c.global[flagName] = []string{value}
			}
		} else {
			c.ignored = append(c.ignored, key)
		}
	}
	return sc.Err()
}

// apply sets, on a command's flags, the configured values of the flags the
// command line did not set.
func (c *config) apply(command string, fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	values := map[string][]string{}
	for k, v := range c.global {
		if fs.Lookup(k) != nil {
			values[k] = v
		}
	}
	for k, v := range c.sections[command] {
		if fs.Lookup(k) == nil {
			return fmt.Errorf("configuration %s: [%s] %s: %s has no such flag", c.path, command, k, command)
		}
		values[k] = v
	}
	for k, vals := range values {
		if set[k] || k == "config" {
			continue
		}
		for _, v := range vals {
			if err := fs.Set(k, v); err != nil {
				return fmt.Errorf("configuration %s: %s = %q: %w", c.path, k, maskIf(k, v), err)
			}
		}
	}
	return nil
}

const configUsage = `Usage: certharvest config check FILE

Validate a configuration file (TOML, or the original service's webapp.ini)
and print the effective configuration of every command, secrets masked.
Command-line flags override the file's values.

A configuration file's keys are flag names. Top-level keys apply to every
command that has the flag; a [scan], [check], [serve], [list] or [show]
table applies to that command. Arrays set repeatable flags.

  trust = "/etc/ssl/certs/ca-certificates.crt"
  certs = "/var/lib/certharvest/certs"
  report = "/var/log/certharvest/report.jsonl"

  [serve]
  maildir = "/var/spool/certharvest"
  workers = 4

Use it with any command: certharvest serve --config /etc/certharvest/certharvest.toml
`

func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
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
	known := map[string]bool{}
	var out strings.Builder
	for _, name := range configCommands() {
		var buf, errBuf bytes.Buffer
		code := run(ctx, []string{name, "--config", path, "--print-config"}, &buf, &errBuf)
		if code != exitOK {
			return fmt.Errorf("%s", strings.TrimSpace(errBuf.String()))
		}
		fmt.Fprintf(&out, "[%s]\n%s\n", name, buf.String())
		for _, line := range strings.Split(buf.String(), "\n") {
			if k, _, ok := strings.Cut(line, " = "); ok {
				known[strings.TrimSpace(k)] = true
			}
		}
	}
	var unknown []string
	for k := range c.global {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		return fmt.Errorf("configuration %s: unknown keys: %s", path, strings.Join(unknown, ", "))
	}
	fmt.Fprintf(stdout, "# %s is valid. Effective configuration, by command:\n\n%s", path, out.String())
	if len(c.ignored) > 0 {
		fmt.Fprintf(stdout, "# keys of %s that certharvest does not use: %s\n", path, strings.Join(c.ignored, ", "))
	}
	return nil
}

// printConfig writes every flag of fs with its value, secrets masked.
func printConfig(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" || f.Name == "print-config" {
			return
		}
		fmt.Fprintf(w, "%s = %q\n", f.Name, maskIf(f.Name, f.Value.String()))
	})
}

func maskIf(flagName, value string) string {
	if isSecretFlag(flagName) && value != "" {
		return "********"
	}
	return value
}
