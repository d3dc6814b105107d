package main

import (
	"github.com/spf13/pflag"

	"github.com/certharvest/certharvest/ingest/mbox"
)

// This file is scan's part in reading archives (docs/ARCHIVES.md): mbox
// files, and files compressed with gzip, which package ingest's walk finds
// and reads.

// mboxFormatVar registers scan's --mbox-format on fs, into f.
func mboxFormatVar(fs *pflag.FlagSet, f *parsedFlag[mbox.Format]) {
	*f = newParsedFlag(mbox.Auto.String(), mbox.ParseFormat)
	fs.Var(f, "mbox-format", "mbox `variant`: auto (by each file's first message), mboxrd, mboxo or mboxcl2")
}
