package pgtest

import "syscall"

// sysProcAttr runs initdb and postgres as s.cred, when set, and has the
// kernel end them (SIGQUIT: PostgreSQL's immediate shutdown) if the test
// binary dies without stopping them.
func (s *Server) sysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT}
	if s.cred != nil {
		a.Credential = &syscall.Credential{Uid: s.cred.uid, Gid: s.cred.gid, NoSetGroups: true}
	}
	return a
}
