// Package probe implements health probes with Azure Front Door semantics, for
// the edge and the controller.
//
// A Checker sends one probe: GET or HEAD of a path on a new TCP connection
// (keep-alives off, so a half-dead listener cannot hide behind a pooled
// connection), bounded by a timeout; it passes only on 200, its latency is
// measured to the last byte of the body, and a JSON body's readiness fields
// (role, epoch, region, draining) are recorded.
//
// A Window keeps the last SampleSize results of one target: the target is
// healthy while at least SuccessesRequired of them passed. The first result
// fills the whole window, so the first probe decides the initial state; after
// that a healthy target turns unhealthy after SampleSize-SuccessesRequired+1
// consecutive failures and an unhealthy one (with a window of failures)
// returns after SuccessesRequired passes: Config.DetectionWindow and
// Config.RecoveryWindow give the times.
//
// A Monitor probes a fixed set of targets every Interval. Its loop calls
// Step, which probes every target once, concurrently, and returns when all
// results are recorded; tests and run-once tools call Step directly. The
// probe itself is a Func, so the window logic can be tested under
// testing/synctest with scripted results and exact times.
package probe
