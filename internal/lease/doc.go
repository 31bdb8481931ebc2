// Package lease implements the write lease that fences a primary region.
//
// Three voters: the controller (witness) and the two regions. A primary of
// epoch e writes only while it holds a lease. A Holder, on the primary,
// renews every TTL/3: first from the controller's Grantor, and when the
// controller cannot be reached, from the standby's Grantor, which vouches
// only while it is itself a standby of epoch e and has not been stopped.
// A renewal is counted from the moment its request was sent, on the
// primary's monotonic clock, minus a margin for clock-rate drift, so the
// holder's lease always ends before the grantor's record of it does.
//
// To promote, the controller stops both grantors (each answers how long
// its last grant can still be in force), waits that long, and only then
// gives the standby epoch e+1. An isolated primary therefore stops writing
// within one TTL; a dead controller does not stop a primary that can reach
// its standby; and with the controller down and the regions cut apart,
// writes stop rather than split.
package lease
