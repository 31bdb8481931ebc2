package region

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3/conversations"

	"github.com/understudy/understudy/internal/store/postgres"
	"github.com/understudy/understudy/internal/testutil/pgtest"
	"github.com/understudy/understudy/internal/topology"
)

// Engine replication: eastus2 on a PostgreSQL primary, centralus on its
// streaming standby. Sync commits wait for the standby; the primary and
// its database are killed; the standby is promoted (pg_promote) with every
// acknowledged turn; the old primary's server is rewound into a standby
// of the new one, and its region comes back as a standby that the new
// primary's commits wait for again.
func TestEngineFailoverAndRewind(t *testing.T) {
	w := newWorld(t, "sqlite")
	pg := pgtest.Start(t, pgtest.Options{})
	dsn := pg.NewDatabase(t)
	db := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	w.topo.Replication.Transport = "engine"
	w.topo.Region("eastus2").Store = topology.Store{Driver: "postgres", DSN: topology.NewSecret(dsn), MaxConns: 4}
	w.start("eastus2") // migrates and bootstraps epoch 1
	sb := pgtest.StartStandby(t, pg, "centralus", pgtest.Options{})
	w.topo.Region("centralus").Store = topology.Store{Driver: "postgres", DSN: topology.NewSecret(sb.DSN(db)), MaxConns: 4}
	if err := w.topo.Validate(); err != nil {
		t.Fatal(err)
	}
	w.start("centralus")
	dump = func() {
		for _, n := range []string{"eastus2", "centralus"} {
			b, _ := json.Marshal(w.state(n))
			t.Logf("%s: %s", n, b)
		}
	}

	eventually(t, 10*time.Second, "eastus2 writable, with commits waiting for the streaming standby", func() bool {
		st := w.state("eastus2")
		return st.Role == "primary" && st.Lease != nil && st.Lease.Valid && st.Engine != nil && st.Engine.Synchronous &&
			len(st.Engine.Standbys) == 1 && st.Engine.Standbys[0].SyncState == "sync"
	})
	if st := w.state("centralus"); st.Role != "standby" || st.Epoch != 1 || st.Engine == nil || !st.Engine.InRecovery || !st.Vouching {
		t.Fatalf("centralus = %+v, want a vouching standby of epoch 1 in recovery", st)
	}
	if code := w.adminCall("PUT", "eastus2", "/admin/agents", []any{agent}, nil); code != 200 {
		t.Fatalf("apply agent: %d", code)
	}
	east, central := w.client("eastus2"), w.client("centralus")
	conv, err := east.Conversations.New(context.Background(), conversations.ConversationNewParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"Where is order A-1?", "And A-2?"} {
		turn(t, east, conv.ID, text)
	}
	acked := itemIDs(t, east, conv.ID)
	// remote_apply: an acknowledged turn is readable on the standby at once.
	if got := itemIDs(t, central, conv.ID); !equal(got, acked) {
		t.Fatalf("standby holds %v, want %v", got, acked)
	}

	// Lose the primary region and its database.
	w.kill("eastus2")
	pg.Kill()
	var promoted map[string]any
	if code := w.adminCall("POST", "centralus", "/admin/promote", map[string]int64{"epoch": 2}, &promoted); code != 200 {
		t.Fatalf("promote: %d %v", code, promoted)
	}
	st := w.state("centralus")
	if st.Role != "primary" || st.Epoch != 2 || st.Engine.InRecovery || st.Engine.Synchronous {
		t.Fatalf("after promotion centralus = %+v, want an asynchronous primary of epoch 2 out of recovery", st)
	}
	if got := itemIDs(t, central, conv.ID); !equal(got, acked) {
		t.Fatalf("after failover centralus holds %v, want %v", got, acked)
	}

	// The old primary's server becomes a standby of the new one.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	rep, err := postgres.Rewind(ctx, postgres.RewindOptions{Data: pg.Data, Source: sb.DSN(db)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Method != "rewind" && rep.Method != "none" {
		t.Fatalf("rewind report %+v: checksums are on, a rewind must do", rep)
	}
	t.Logf("rewind: %+v", rep)
	if err := pg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	w.start("eastus2")
	eventually(t, 15*time.Second, "eastus2 a standby of epoch 2, and centralus waiting for it again", func() bool {
		e, c := w.state("eastus2"), w.state("centralus")
		return e.Role == "standby" && e.Epoch == 2 && e.KnownPrimary == "centralus" &&
			c.Lease != nil && c.Lease.Valid && c.Engine.Synchronous
	})
	turn(t, central, conv.ID, "Still there?")
	acked = itemIDs(t, central, conv.ID)
	if got := itemIDs(t, east, conv.ID); !equal(got, acked) {
		t.Fatalf("rewound standby holds %v, want %v", got, acked)
	}
}
