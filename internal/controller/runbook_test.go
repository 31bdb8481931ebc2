package controller

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func counting(names ...string) ([]Step, map[string]int) {
	calls := map[string]int{}
	var steps []Step
	for _, n := range names {
		steps = append(steps, Step{Name: n, Timeout: time.Second, Run: func(ctx context.Context, r *Run) error {
			calls[n]++
			return nil
		}})
	}
	return steps, calls
}

func TestRunbookResumesWhereItStopped(t *testing.T) {
	j := Journal{Dir: t.TempDir()}
	steps, calls := counting("detect", "fence", "promote", "route")
	// A controller crashed while "promote" ran: the journal says so.
	r := NewRun("fo-1", "failover", "eastus2", "centralus", "test", steps)
	r.Steps[0].Status, r.Steps[1].Status, r.Steps[2].Status = StepDone, StepDone, StepRunning
	r.Set("epoch", int64(7))
	if err := j.Save(r); err != nil {
		t.Fatal(err)
	}

	runs, err := j.List()
	if err != nil || len(runs) != 1 {
		t.Fatalf("List = %v, %v", runs, err)
	}
	resumed := runs[0]
	if e, ok := resumed.Int("epoch"); !ok || e != 7 {
		t.Fatalf("journaled data lost: epoch %v %v", e, ok)
	}
	if err := Execute(context.Background(), j, resumed, steps); err != nil {
		t.Fatal(err)
	}
	if calls["detect"] != 0 || calls["fence"] != 0 || calls["promote"] != 1 || calls["route"] != 1 {
		t.Errorf("calls = %v, want only promote (again) and route", calls)
	}
	runs, _ = j.List()
	if runs[0].Status != RunCompleted || runs[0].Steps[3].Status != StepDone {
		t.Errorf("journal after resume: %+v", runs[0])
	}
}

func TestRunbookStepTimeoutFailsTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := Journal{Dir: t.TempDir()}
		attempts := 0
		steps := []Step{
			{Name: "validate", Timeout: 3 * time.Second, Run: func(ctx context.Context, r *Run) error {
				attempts++
				return errors.New("edge answered 503")
			}},
			{Name: "report", Timeout: time.Second, Run: func(context.Context, *Run) error { t.Error("ran after a failed step"); return nil }},
		}
		r := NewRun("fo-2", "failover", "a", "b", "test", steps)
		start := time.Now()
		err := Execute(context.Background(), j, r, steps)
		if !errors.Is(err, ErrStepTimeout) || !strings.Contains(err.Error(), "edge answered 503") {
			t.Fatalf("err = %v", err)
		}
		if took := time.Since(start); took != 3*time.Second {
			t.Errorf("gave up after %s, want exactly the step timeout 3s", took)
		}
		if attempts < 5 {
			t.Errorf("retried %d times within the timeout", attempts)
		}
		if r.Status != RunFailed || r.Steps[0].Status != StepFailed || r.Steps[1].Status != StepPending {
			t.Errorf("run = %s, steps %+v", r.Status, r.Steps)
		}
	})
}

func TestRunbookSkipAndMismatch(t *testing.T) {
	j := Journal{Dir: t.TempDir()}
	steps := []Step{{Name: "start-region", Timeout: time.Second, Run: func(context.Context, *Run) error { return ErrSkip }}}
	r := NewRun("fo-3", "failover", "a", "b", "hot-warm needs no start", steps)
	if err := Execute(context.Background(), j, r, steps); err != nil {
		t.Fatal(err)
	}
	if r.Steps[0].Status != StepSkipped {
		t.Errorf("status %s", r.Steps[0].Status)
	}
	other, _ := counting("x")
	if err := Execute(context.Background(), j, r, other); err == nil {
		t.Error("a journal of another runbook must not be executed")
	}
}
