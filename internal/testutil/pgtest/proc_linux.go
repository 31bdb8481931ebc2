package pgtest

import "syscall"

// procAttr runs a server command in its own process group, as u when not
// nil, and has the kernel SIGKILL it if the test process dies.
func procAttr(u *runAs) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if u != nil {
		a.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}}
	}
	return a
}
