package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/store/postgres"
	"github.com/understudy/understudy/internal/testutil/pgtest"
)

// TestPostgresEngineFailoverAndFailback: the topology under `up` on a
// PostgreSQL primary and its streaming standby, two gateways per region
// (four processes); agent turns through the edge; the primary region's
// gateways, model server and PostgreSQL killed with SIGKILL; the controller fails over (pg_promote) with zero
// acknowledged turns lost; the old primary's database is rewound into a
// standby (`understudy pg-rewind`), its region comes back, and a failback
// moves the primary home with zero loss; finally the other database is
// rewound too, and the pair is synchronous again.
func TestPostgresEngineFailoverAndFailback(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two PostgreSQL servers and the whole topology for about a minute")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	pg := pgtest.Start(t, pgtest.Options{})
	dsn := pg.NewDatabase(t)
	// The standby copies the primary, schema included: migrate first.
	s, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	sb := pgtest.StartStandby(t, pg, "centralus", pgtest.Options{})
	sbDSN := strings.Replace(dsn, fmt.Sprintf(":%d/", pg.Port), fmt.Sprintf(":%d/", sb.Port), 1)

	// 2 model servers, 4 gateways, edge, controller.
	_, st := startUp(t, fmt.Sprintf(pgTopology, e2eKey, e2eAdmin, e2eModel, dsn, sbDSN, "engine"), 8)
	var ub upBalancers
	if err := json.Unmarshal(readUpJSON(t, st), &ub); err != nil {
		t.Fatal(err)
	}
	_, edge, _ := st.component("edge")
	_, ctl, _ := st.component("controller")
	synchronous := func(s ctlStatus, region string) bool {
		eng := s.Regions[region].Readiness.Engine
		return eng != nil && eng["synchronous"] == true && eng["standbys_streaming"] == float64(1)
	}
	var last ctlStatus
	defer func() {
		if t.Failed() {
			t.Logf("last controller status: %+v", last)
		}
	}()
	waitFor(t, 30*time.Second, "a writable primary waiting for its streaming standby", func() bool {
		s, err := controllerStatus(t, ctl)
		last = s
		east := s.Regions["eastus2"].Readiness
		return err == nil && east.Role == "primary" && east.Writable && synchronous(s, "eastus2") &&
			s.Regions["centralus"].Readiness.Role == "standby"
	})

	stop := make(chan struct{})
	var acks []ack
	var retries int64
	var agentDone sync.WaitGroup
	agentDone.Go(func() { acks, retries = agentLoad(t, edge, 4, stop) })
	<-time.After(3 * time.Second)
	killedAt := time.Now()
	controlCall(t, ub.Control, "/v1/regions/eastus2/down") // SIGKILL of both gateways and the model server
	pg.Kill()
	var s1 ctlStatus
	waitFor(t, 30*time.Second, "an automatic failover to complete", func() bool {
		var err error
		s1, err = controllerStatus(t, ctl)
		return err == nil && s1.Last != nil && s1.Last.Kind == "failover" && (s1.Last.Status == "completed" || s1.Last.Status == "failed")
	})
	if s1.Last.Status != "completed" || s1.Primary != "centralus" || s1.Epoch != 2 {
		t.Fatalf("failover: %+v", s1.Last)
	}
	t.Logf("failover completed %s after the kill; controller RTO %vms, target %vms; report: rejoin %q",
		time.Since(killedAt).Round(time.Millisecond), s1.Last.Data["rto_ms"], s1.Last.Data["rto_target_ms"], s1.Last.Data["rejoin"])
	for _, step := range s1.Last.Steps {
		t.Logf("  step %-18s %s (%d attempts) at fault+%s", step.Name, step.Ended.Sub(step.Started).Round(time.Millisecond),
			step.Attempts, step.Started.Sub(s1.Last.FaultAt).Round(time.Millisecond))
		if step.Name == "promote" {
			t.Logf("fault to promoted standby: %s (the promote step, pg_promote included: %s)",
				step.Ended.Sub(s1.Last.FaultAt).Round(time.Millisecond), step.Ended.Sub(step.Started).Round(time.Millisecond))
		}
	}
	if s1.Last.Data["rto_met"] != true {
		t.Errorf("RTO target missed: %v", s1.Last.Data)
	}
	if !strings.Contains(fmt.Sprint(s1.Last.Data["rejoin"]), "pg-rewind") {
		t.Errorf("the report does not say how the old primary rejoins: %v", s1.Last.Data)
	}
	<-time.After(2 * time.Second) // turns acknowledged by the new primary too
	close(stop)
	agentDone.Wait()
	if len(acks) < 20 {
		t.Fatalf("only %d agent turns acknowledged", len(acks))
	}
	if m := lost(t, edge, acks); len(m) > 0 {
		t.Fatalf("%d of %d acknowledged turns lost after failover (synchronous replication); first %+v", len(m), len(acks), m[0])
	}
	t.Logf("%d agent turns acknowledged, 0 lost; %d client retries during the failover", len(acks), retries)

	// The old primary's database is rewound into a standby of centralus,
	// streaming through a replication slot there.
	rewind := func(region, data string) string {
		slot := "understudy_" + region
		out, err := exec.CommandContext(ctx, binary(t), "pg-rewind", "-f", st.Topology, "--region", region, "--data", data, "--slot", slot).CombinedOutput()
		if err != nil {
			t.Fatalf("pg-rewind %s: %v\n%s", region, err, out)
		}
		if !strings.Contains(string(out), "method=rewind") {
			t.Errorf("pg-rewind %s did not rewind (data checksums are on):\n%s", region, out)
		}
		if !strings.Contains(string(out), "replication slot "+slot+" (created)") {
			t.Errorf("pg-rewind %s did not create slot %s:\n%s", region, slot, out)
		}
		return string(out)
	}
	t.Logf("pg-rewind eastus2:\n%s", rewind("eastus2", pg.Data))
	if err := pg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	controlCall(t, ub.Control, "/v1/regions/eastus2/up")
	waitFor(t, 30*time.Second, "eastus2 back as a standby of epoch 2, centralus waiting for it", func() bool {
		s, err := controllerStatus(t, ctl)
		east := s.Regions["eastus2"]
		return err == nil && east.Up && east.Readiness.Role == "standby" && east.Readiness.Epoch == 2 && synchronous(s, "centralus")
	})

	out, err := exec.CommandContext(ctx, binary(t), "failback", "-f", st.Topology).CombinedOutput()
	if err != nil {
		t.Fatalf("failback: %v\n%s", err, out)
	}
	t.Logf("failback:\n%s", out)
	s2, err := controllerStatus(t, ctl)
	if err != nil || s2.Primary != "eastus2" || s2.Epoch != 3 || s2.Last.Data["rpo_events"] != float64(0) {
		t.Fatalf("after failback: %+v %v", s2, err)
	}
	if m := lost(t, edge, acks); len(m) > 0 {
		t.Fatalf("%d acknowledged turns lost after failback", len(m))
	}

	// centralus's database, fenced by the failback, becomes eastus2's
	// standby again: the pair is back to where it started.
	if err := sb.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("pg-rewind centralus:\n%s", rewind("centralus", sb.Data))
	// The slot eastus2 streamed through while centralus was primary went
	// with the rewind (pg_rewind empties pg_replslot): a standby keeps WAL
	// for its slots too.
	if ents, err := os.ReadDir(filepath.Join(sb.Data, "pg_replslot")); err != nil || len(ents) > 0 {
		t.Errorf("centralus's pg_replslot after the rewind: %v, %v; want it empty", ents, err)
	}
	if err := sb.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "centralus a standby of epoch 3, eastus2 waiting for it", func() bool {
		s, err := controllerStatus(t, ctl)
		c := s.Regions["centralus"].Readiness
		return err == nil && c.Role == "standby" && c.Epoch == 3 && synchronous(s, "eastus2")
	})
	eastDB, err := pg.Open("postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer eastDB.Close()
	var active bool
	if err := eastDB.QueryRowContext(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = 'understudy_centralus'").Scan(&active); err != nil || !active {
		t.Errorf("centralus streams, but not through its slot on eastus2: active %v, %v", active, err)
	}
	stop = make(chan struct{})
	time.AfterFunc(time.Second, func() { close(stop) })
	turns, _ := agentLoad(t, edge, 2, stop)
	_, central, _ := st.component("gateway/centralus/1")
	if m := lost(t, central, turns); len(turns) == 0 || len(m) > 0 {
		t.Fatalf("%d of %d turns acknowledged by eastus2 missing on its synchronous standby", len(m), len(turns))
	}
}
