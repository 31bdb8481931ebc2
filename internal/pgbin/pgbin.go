package pgbin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
)

// ErrNoTools is returned by Find when no directory holds the tools.
var ErrNoTools = errors.New("PostgreSQL tools not found")

// Find returns the directory holding every one of PostgreSQL's tools
// named: UNDERSTUDY_PG_BIN, else the directory the first tool on PATH
// resolves to, else the newest /usr/lib/postgresql/*/bin (Debian and
// Ubuntu keep the server tools off PATH). The error wraps ErrNoTools.
func Find(tools ...string) (string, error) {
	has := func(d string) bool {
		for _, t := range tools {
			if fi, err := os.Stat(filepath.Join(d, t)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if d := os.Getenv("UNDERSTUDY_PG_BIN"); d != "" {
		if !has(d) {
			return "", fmt.Errorf("UNDERSTUDY_PG_BIN=%s lacks one of %v: %w", d, tools, ErrNoTools)
		}
		return d, nil
	}
	if p, err := exec.LookPath(tools[0]); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	major := func(d string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return n
	}
	slices.SortFunc(dirs, func(a, b string) int { return major(b) - major(a) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("%v: %w; install postgresql or set UNDERSTUDY_PG_BIN", tools, ErrNoTools)
}
