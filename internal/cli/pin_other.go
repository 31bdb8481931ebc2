//go:build !linux

package cli

import "errors"

func pinCPUs([]int) error {
	return errors.New("cpus: pinning threads to CPUs is supported on Linux only")
}
