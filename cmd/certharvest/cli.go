package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/certharvest/certharvest/output/publish"
)

// The command line is read by github.com/spf13/cobra with
// github.com/spf13/pflag: flags anywhere among the arguments, GNU style
// (scan PATH --trust FILE is scan --trust FILE PATH), "--" ending them,
// and shell completion (certharvest completion bash|zsh|fish|powershell).
// Each command's flags are still defined on its own pflag.FlagSet (the
// new*Command functions), which the configuration file sets too; cobra
// shares its flags.

// cliIO is where the commands read and write.
type cliIO struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// newRootCommand returns the certharvest command with every subcommand.
func newRootCommand(cio cliIO) *cobra.Command {
	root := &cobra.Command{
		Use:           "certharvest",
		Version:       buildVersion(),
		Args:          cobra.ArbitraryArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cc *cobra.Command, args []string) error {
			if len(args) == 0 {
				fmt.Fprint(cio.stderr, mainUsage)
				return usageShown{}
			}
			msg := fmt.Sprintf("certharvest: unknown command %q", args[0])
			if s := cc.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf("; did you mean %s?", s[0])
			}
			fmt.Fprintf(cio.stderr, "%s\n\n%s", msg, mainUsage)
			return usageShown{}
		},
	}
	root.SuggestionsMinimumDistance = 2
	root.SetVersionTemplate("certharvest {{.Version}}\n")
	// The main help is mainUsage; the commands that are cobra's own
	// (completion, help) and config and version keep cobra's.
	cobraHelp := root.HelpFunc()
	root.SetHelpFunc(func(cc *cobra.Command, args []string) {
		if cc != root {
			cobraHelp(cc, args)
			return
		}
		fmt.Fprint(cio.stdout, mainUsage)
	})
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err.Error()} })
	root.SetIn(cio.stdin)
	root.SetOut(cio.stdout)
	root.SetErr(cio.stderr)

	scan, scanArgs := newScanCommand(cio.stdout)
	root.AddCommand(subcommand(scan, "verify .eml files, folders and Maildirs; store certificates; write a report",
		func(ctx context.Context, args []string) error {
			return runScan(ctx, scanArgs, args, cio.stdout, cio.stderr)
		}))
	check, checkArgs := newCheckCommand(cio.stdout)
	root.AddCommand(subcommand(check, "verify one message and tell its whole story",
		func(ctx context.Context, args []string) error {
			return runCheck(ctx, checkArgs, args, cio.stdin, cio.stdout, cio.stderr)
		}))
	serve, serveArgs := newServeCommand(cio.stdout)
	root.AddCommand(subcommand(serve, "run as a service over a Maildir spool (and live inputs)",
		func(ctx context.Context, args []string) error {
			return runServe(ctx, serveArgs, args, cio.stderr)
		}))
	revalidate, revalidateArgs := newRevalidateCommand(cio.stdout)
	root.AddCommand(subcommand(revalidate, "check the stored certificates again: expiry, revocation (for a daily cron)",
		func(ctx context.Context, args []string) error {
			return runRevalidate(ctx, revalidateArgs, args, cio.stderr)
		}))
	list, listArgs := newListCommand(cio.stdout)
	root.AddCommand(subcommand(list, "list the stored certificates, soonest expiry first",
		func(ctx context.Context, args []string) error {
			return runList(ctx, listArgs, args, cio.stdout, cio.stderr)
		}))
	show, showArgs := newShowCommand(cio.stdout)
	showCmd := subcommand(show, "print one stored certificate",
		func(ctx context.Context, args []string) error {
			return runShow(ctx, showArgs, args, cio.stdout)
		})
	showCmd.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		return completeAddresses(showArgs.certs, args)
	}
	root.AddCommand(showCmd)
	root.AddCommand(newStoreCommand(cio))
	export, exportArgs := newExportCommand(cio.stdout)
	root.AddCommand(subcommand(export, "publish the certificates: PEM, LDIF for LDAP, SMIMEA for DNS, JSON",
		func(ctx context.Context, args []string) error {
			return runExport(ctx, exportArgs, args, cio.stdout, cio.stderr)
		}))
	reasons, markdown := newReasonsCommand(cio.stdout)
	root.AddCommand(subcommand(reasons, "list the reason codes of the report",
		func(_ context.Context, args []string) error {
			return runReasons(*markdown, args, cio.stdout)
		}))
	root.AddCommand(&cobra.Command{
		Use:   "config check FILE",
		Short: "check a configuration file",
		// config reads its own arguments: "check FILE", or --help.
		DisableFlagParsing: true,
		RunE: func(cc *cobra.Command, args []string) error {
			return runConfig(cc.Context(), args, cio.stdout, cio.stderr)
		},
	})
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "print the version",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintln(cio.stdout, "certharvest", buildVersion())
		},
	})
	// cobra's completion command prints its help, and exits 0, when the
	// shell is missing or unknown: a usage error instead.
	root.InitDefaultCompletionCmd()
	if completion, _, err := root.Find([]string{"completion"}); err == nil && completion != root {
		completion.Args = cobra.ArbitraryArgs
		completion.RunE = func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown shell %q: want bash, zsh, fish or powershell", args[0])
			}
			return usagef("want a shell: certharvest completion bash|zsh|fish|powershell")
		}
	}
	return root
}

// usageShown is a usage error whose message was printed already: exit
// status 2.
type usageShown struct{}

func (usageShown) Error() string { return "usage" }

// subcommand makes c a cobra command: its usage text for --help, its flags,
// and run once they are read and the configuration file applied.
func subcommand(c *command, short string, run func(ctx context.Context, args []string) error) *cobra.Command {
	cc := &cobra.Command{
		Use:   c.name,
		Short: short,
		Args:  cobra.ArbitraryArgs, // each command says what it wants
		RunE: func(cc *cobra.Command, args []string) error {
			if err := c.configure(); err != nil {
				return err
			}
			return run(cc.Context(), args)
		},
	}
	cc.Flags().AddFlagSet(c.fs)
	cc.SetHelpFunc(func(cc *cobra.Command, _ []string) {
		fmt.Fprint(c.stdout, c.usage)
		fmt.Fprintf(c.stdout, "\nFlags:\n%s", flagUsages(cc.Flags()))
	})
	completeFlagValues(cc)
	return cc
}

// flagUsages lists the flags of fs, one line each, as --help prints them:
// the flag, the name of its value, what it does, and its default. The
// reasoning behind each is in docs/CONFIGURATION.md.
func flagUsages(fs *pflag.FlagSet) string {
	type row struct{ flag, usage string }
	var rows []row
	width := 0
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		value, usage := pflag.UnquoteUsage(f)
		left := "      --" + f.Name
		if f.Shorthand != "" {
			left = "  -" + f.Shorthand + ", --" + f.Name
		}
		if value == "int" {
			value = "number" // pflag's name for an int without one of its own
		}
		if value != "" {
			left += " " + value
		}
		switch f.DefValue {
		case "", "0", "false", "[]":
		default:
			if strings.Contains(usage, "(default") {
				break // the usage says it in words
			}
			usage += " (default " + f.DefValue + ")"
		}
		rows = append(rows, row{left, usage})
		width = max(width, len(left))
	})
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%-*s  %s\n", width, r.flag, r.usage)
	}
	return b.String()
}

// flagChoices returns the values of a flag that takes one of a few words,
// for shell completion; nil for any other flag.
func flagChoices(name string) []string {
	switch name {
	case "dkim-align":
		return []string{"strict", "relaxed"}
	case "log-level":
		return []string{"debug", "info", "warn", "error"}
	case "log-format":
		return []string{"text", "json"}
	case "format":
		return publish.Formats()
	case "ldap-rdn":
		return []string{publish.LDAPRDNMail, publish.LDAPRDNUID, publish.LDAPRDNCN}
	case "mbox-format":
		return []string{"auto", "mboxrd", "mboxo", "mboxcl2"}
	case "require-profile":
		return []string{"strict", "multipurpose", "legacy", "none"}
	case "revocation":
		return []string{"off", "soft", "hard"}
	}
	return nil
}

// completeFlagValues tells the shell how to complete each flag's value:
// a word from flagChoices, a file or a folder (by the name the flag's
// usage gives its value), else nothing.
func completeFlagValues(cc *cobra.Command) {
	cc.Flags().VisitAll(func(f *pflag.Flag) {
		if choices := flagChoices(f.Name); choices != nil {
			_ = cc.RegisterFlagCompletionFunc(f.Name, cobra.FixedCompletions(choices, cobra.ShellCompDirectiveNoFileComp))
			return
		}
		switch name, _ := pflag.UnquoteUsage(f); name {
		case "file":
			_ = cc.MarkFlagFilename(f.Name)
		case "folder", "dir":
			_ = cc.MarkFlagDirname(f.Name)
		}
	})
}

// completeAddresses offers the addresses stored in the folder certs.
func completeAddresses(certs string, args []string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	store, err := openExistingStore(certs)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	addrs, err := store.Addresses()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	return addrs, cobra.ShellCompDirectiveNoFileComp
}

// doubleDashLongFlags rewrites the Go flag package's single-dash long flags
// ("-trust FILE", "-at=T") as pflag reads them ("--trust"), so that command
// lines written for earlier versions keep their meaning: to pflag,
// "-trust" is the short flags -t -r -u -s -t. Only the names of the
// command's long flags are rewritten, and nothing after "--".
func doubleDashLongFlags(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == root {
		return args
	}
	out := slices.Clone(args)
	for i, arg := range out {
		if arg == "--" {
			break
		}
		if len(arg) < 3 || arg[0] != '-' || arg[1] == '-' {
			continue
		}
		name, _, _ := strings.Cut(arg[1:], "=")
		if len(name) > 1 && (name == "help" || cmd.Flags().Lookup(name) != nil) {
			out[i] = "-" + arg
		}
	}
	return out
}
