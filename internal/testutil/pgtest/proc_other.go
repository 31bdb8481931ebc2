//go:build unix && !linux

package pgtest

import "syscall"

// procAttr runs a server command in its own process group, as u when not
// nil. Without a parent-death signal outside Linux, a killed test process
// can leave its servers running.
func procAttr(u *runAs) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if u != nil {
		a.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}}
	}
	return a
}
