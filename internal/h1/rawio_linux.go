package h1

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawConn reads and writes a TCP connection with raw system calls through
// its poller (syscall.RawConn): the same non-blocking read and write, the
// same wait for readiness, deadlines and Close as net.TCPConn's, except
// that the scheduler is not told a system call started. Told, it lets the
// monitor thread hand the goroutine's processor to another thread when the
// call is still running at its next tick, which on a VM where a write takes
// tens of microseconds happened to about one request in two: two more
// thread wake-ups on the request's path (ARCHITECTURE.md "Raw reads and
// writes").
type rawConn struct {
	*net.TCPConn
	rc syscall.RawConn
}

// fast returns nc reading and writing through rawConn when it is a TCP
// connection, else nc.
func fast(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	return &rawConn{TCPConn: tc, rc: rc}
}

func (c *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n uintptr
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			n, _, errno = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			if errno != syscall.EINTR {
				if raceEnabled && errno == 0 {
					syscall.Read(int(fd), nil) // the race detector's edge from the writer
				}
				return errno != syscall.EAGAIN
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return int(n), nil
}

func (c *rawConn) Write(p []byte) (int, error) {
	var done int
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		if raceEnabled {
			syscall.Write(int(fd), nil) // the race detector's edge to the reader
		}
		for done < len(p) {
			n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[done])), uintptr(len(p)-done))
			switch e {
			case 0:
				done += int(n)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return done, err
	case errno != 0:
		return done, c.opError("write", errno)
	}
	return done, nil
}

func (c *rawConn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errno}
}
