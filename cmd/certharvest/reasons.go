package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/certharvest/certharvest/verify"
)

const reasonsUsage = `Usage: certharvest reasons [--markdown]

List every reason code the report can carry, with its meaning. The codes are
stable: scripts may rely on them.
`

// newReasonsCommand returns reasons' command and its --markdown flag.
func newReasonsCommand(stdout io.Writer) (*command, *bool) {
	cmd := newCommand("reasons", reasonsUsage, stdout)
	return cmd, cmd.fs.Bool("markdown", false, "print a Markdown table (docs/REASONS.md is made with it)")
}

// runReasons lists the reason codes; the command line has been read.
func runReasons(markdown bool, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return usagef("unexpected arguments: %s", strings.Join(args, " "))
	}
	writeReasons(stdout, markdown)
	return nil
}

func writeReasons(w io.Writer, markdown bool) {
	if markdown {
		fmt.Fprintln(w, "| reason | temporary | meaning |")
		fmt.Fprintln(w, "|---|---|---|")
	}
	for _, r := range verify.Reasons() {
		temp := ""
		if r.Temporary() {
			temp = "yes"
		}
		if markdown {
			fmt.Fprintf(w, "| `%s` | %s | %s |\n", r, temp, r.Meaning())
		} else {
			line := fmt.Sprintf("%-22s %s", r, r.Meaning())
			if temp != "" {
				line += " (temporary)"
			}
			fmt.Fprintln(w, line)
		}
	}
}
