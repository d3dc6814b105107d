//go:build unix && !linux

package pgtest

import "syscall"

// sysProcAttr runs initdb and postgres as s.cred, when set.
func (s *Server) sysProcAttr() *syscall.SysProcAttr {
	if s.cred == nil {
		return nil
	}
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: s.cred.uid, Gid: s.cred.gid, NoSetGroups: true}}
}
