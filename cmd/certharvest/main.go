// Command certharvest collects S/MIME certificates from signed emails.
//
// A recipient sends a signed message; certharvest checks that it is genuine
// (DKIM aligned with From, a CMS signature over the content, a certificate
// chain to a trusted root valid for email protection, the certificate's
// address equal to From) and stores the signer's certificate as
// <address>.crt. Every message gets one line in a JSON-lines report.
//
// Run "certharvest help" for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// Exit statuses.
const (
	exitOK          = 0
	exitOperational = 1
	exitUsage       = 2
	exitRejected    = 3 // check: the message was rejected
)

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

const mainUsage = `certharvest collects S/MIME certificates from signed emails.

Usage:
  certharvest <command> [arguments] [flags]

Commands:
  scan        verify .eml files, folders and Maildirs; store certificates; write a report
  check       verify one message and tell its whole story
  serve       run as a service over a Maildir spool (and live inputs)
  list        list the stored certificates, soonest expiry first
  show        print one stored certificate
  revalidate  check the stored certificates again: expiry, revocation (a daily cron)
  store       manage the PostgreSQL store: migrate, export, import
  export      publish the certificates: PEM, LDIF for LDAP, SMIMEA for DNS, JSON
  reasons     list the reason codes of the report
  config      check a configuration file: certharvest config check FILE
  version     print the version
  completion  print a shell completion script: bash, zsh, fish or powershell
  help        print this help, or a command's: certharvest help scan

Flags may come before or after the arguments; -- ends them.
Run "certharvest <command> --help" for a command's flags and examples.
`

// version may be set at build time with -ldflags "-X main.version=...";
// else buildVersion tells it from the build.
var version = ""

// buildVersion returns version, else what the build recorded: the module's
// version for "go install ...@v1.2.3", else the commit of a build in a
// checkout ("dev" and its first 12 hex digits, "+dirty" for uncommitted
// changes, and its date), so that two builds can be told apart.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, at string
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	v := "dev-" + rev[:min(12, len(rev))]
	if dirty {
		v += "+dirty"
	}
	if at != "" {
		v += " (" + at + ")"
	}
	return v
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes a command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(cliIO{stdin: os.Stdin, stdout: stdout, stderr: stderr})
	root.SetArgs(doubleDashLongFlags(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	name := cmd.Name()
	if p := cmd.Parent(); p != nil && p.HasParent() {
		name = p.Name() + " " + name // store migrate
	}
	var (
		uerr usageError
		rerr errRejected
	)
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &rerr):
		return exitRejected
	case errors.Is(err, usageShown{}):
		return exitUsage
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "certharvest %s: %v\nRun \"certharvest %s --help\" for usage.\n", name, err, name)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "certharvest %s: %v\n", name, err)
		return exitOperational
	}
}
