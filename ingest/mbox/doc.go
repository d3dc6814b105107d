// Package mbox reads the messages of an mbox file, the many messages of a
// mail folder in one file, each after a "From " line, as a stream: one
// message at a time, never more than one message (up to a size limit) in
// memory, whatever the file's size, and each message's bytes exactly as
// they were before they were stored, as far as the format allows.
//
// The variants it reads (qmail's mbox(5) names them; RFC 4155 describes
// the family):
//
//   - mboxrd: a line of the message that begins with "From ", ">From ",
//     ">>From " and so on was stored with one more '>'; reading takes one
//     off. Reversible, and what Thunderbird writes since its mbox writer
//     was rewritten (MboxMsgOutputStream).
//   - mboxo: only a line beginning "From " was stored as ">From ". Reading
//     takes the '>' off a line that begins ">From ", and leaves ">>From "
//     alone. Ambiguous: a message line that already began ">From " reads
//     back as "From " (see docs/ARCHIVES.md).
//   - mboxcl2: no quoting; each message's header has a Content-Length
//     field, the size of its body, and a message ends where it says.
//
// Every variant ends a message with a blank line that is the file's, not
// the message's: it is taken off. A message is read with its line endings
// as stored (CRLF stays CRLF).
//
// Writer writes the three variants, for tests and the benchmark corpus.
package mbox
