// Package publish writes harvested certificates where mail clients and
// servers look for them: PEM, LDIF for an LDAP directory (inetOrgPerson,
// RFC 2798), SMIMEA records for a DNS zone (RFC 8162), and JSON lines for
// scripts. Each Format appends one certificate's record to a buffer, so an
// export streams: it holds one certificate at a time, whatever the store's
// size. docs/PUBLISHING.md says how to load each into a directory or a zone.
package publish
