//go:build !linux

package h1

import "net"

// fast returns nc: raw reads and writes are Linux only (rawio_linux.go).
func fast(nc net.Conn) net.Conn { return nc }
