// Package store holds the state that must survive a region: conversations,
// their items, responses, applied agent versions, and the replication meta
// state (role, epoch, epoch history, journal position).
//
// Every write runs in one transaction (Engine.Update) that checks the store
// is primary at the caller's epoch, applies the change, appends it to the
// journal as an Event with the next gap-free seq, calls the guard hook and
// commits. The change is applied from the event's payload by the same code
// a standby runs in ApplyEvents, so replicas hold identical rows: same IDs,
// timestamps and per-conversation sequence numbers. Promote, Fence and
// Rejoin move a store between the roles; Rejoin quarantines the events a
// former primary holds that the new primary never received, and rebuilds
// the state by replaying the journal up to the fork point.
//
// Engine is the driver-independent implementation over database/sql with
// portable SQL; drivers (sqlite, later postgres) open the database, migrate
// the schema and embed it. Consumers declare the small interfaces they
// need; storetest is the contract every driver passes.
package store
