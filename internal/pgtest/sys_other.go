//go:build !unix

package pgtest

import "syscall"

// sysProcAttr: PostgreSQL runs as this process's user.
func (s *Server) sysProcAttr() *syscall.SysProcAttr { return nil }
