package main

import (
	"fmt"
	"io"

	"github.com/certharvest/certharvest/verify"
)

const reasonsUsage = `Usage: certharvest reasons [--markdown]

List every reason code the report can carry, with its meaning. The codes are
stable: scripts may rely on them.
`

func runReasons(args []string, stdout io.Writer) error {
	cmd := newCommand("reasons", reasonsUsage, stdout)
	markdown := cmd.fs.Bool("markdown", false, "print a Markdown table (docs/REASONS.md is made with it)")
	if err := cmd.parse(args); err != nil {
		return err
	}
	writeReasons(stdout, *markdown)
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
