// Package replication ships the primary region's store journal to the
// standby region over HTTP and applies it there.
//
// The Shipper runs beside the primary store: kicked by every commit, it
// reads the events after the standby's acknowledged position and POSTs
// them in batches to the standby gateway's Handler, which applies each
// batch in one store transaction and answers the new position. In sync
// mode WaitReplicated holds a client's acknowledgement until the standby
// has durably applied the write (about one round trip, since every commit
// kicks the shipper), and fails after SyncTimeout rather than acknowledge
// falsely, unless DegradeToAsync allows it and reports it. In async mode
// the lag is reported in events and seconds.
//
// Epochs make it safe: every batch carries the sender's epoch and history.
// A receiver refuses an older epoch with 409 and its own epoch, and a
// shipper told of a newer epoch fences its store. A former primary that
// receives a newer epoch fences itself, quarantines the events the new
// primary never received (store.Rejoin) and continues as its standby.
package replication
