// Package region assembles one region's process: the gateway (OpenAI
// surface and backend pools), the store, the agents runtime, replication
// and the write lease, and keeps them consistent with the store's role.
//
// The store's persisted role and epoch are the truth. A reconcile loop,
// woken by every store commit and by a short ticker, makes the running
// parts match them: a primary holds a write lease (when the topology has
// more than one region) checked before every commit, ships its journal to
// every other region, and acknowledges a client write only once every peer
// in its sync set has applied it (sync mode); a standby applies batches and
// vouches for its primary's lease until told to stop; a fenced former
// primary does neither and rejoins as a standby when the new primary's
// journal reaches it.
//
// Bootstrap: epoch 1 belongs to the topology's primary by definition, so a
// fresh primary store promotes itself to epoch 1 and a fresh standby vouches
// for it at epoch 1. Every later epoch comes from an explicit promotion
// (POST /admin/promote, by an operator or the controller).
package region
