// Package ingest brings messages to the verification pipeline. Each input
// differs from the others only in how the bytes arrive and what context
// travels with them (a file path, an SMTP envelope, a relay's ids); all of
// them hand a verify.Message to the same pipeline.
//
// This file's package holds the batch input, which reads .eml files,
// folders of them and Maildirs (https://cr.yp.to/proto/maildir.html: a
// message is a file in new/ or cur/, never in tmp/).
package ingest
