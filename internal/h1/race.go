//go:build race

package h1

// raceEnabled: built with -race, where rawConn records for the race
// detector the ordering syscall.Read and syscall.Write record (a write to
// any descriptor happens before a later read), so code that is correctly
// ordered by a message over a socket is not reported as a race.
const raceEnabled = true
