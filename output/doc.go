// Package output writes what certharvest produces: the certificate store
// (one PEM file per address, replaced atomically, older certificates kept
// as history), the JSON-lines report (one whole line per message), and the
// human-readable log format.
//
// Every file is written so that a reader, or a crash, never sees half of
// it: a certificate is written to a temporary file, synced and renamed into
// place (POSIX rename(2) is atomic); a report line is one write(2) to a file
// opened for appending. A write that fails part way (a full disk) is taken
// back, the report truncated to the end of its last whole line; a line a
// crash cut is closed with a newline before the next line is written, so
// that it is never glued to another.
package output
