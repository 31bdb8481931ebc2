package probe

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// scripted is a probe Func whose target state the test flips: "up" passes
// at once, "down" fails at once (connection refused), "hang" fails at the
// probe timeout.
type scripted struct {
	mu    sync.Mutex
	state map[string]string
}

func (s *scripted) set(name, state string) {
	s.mu.Lock()
	s.state[name] = state
	s.mu.Unlock()
}

func (s *scripted) probe(ctx context.Context, t Target) Result {
	s.mu.Lock()
	st := s.state[t.Name]
	s.mu.Unlock()
	switch st {
	case "up":
		return Result{OK: true, Status: 200, Latency: time.Millisecond, Readiness: Readiness{HasBody: true, Role: "primary", Epoch: 2}}
	case "hang":
		<-ctx.Done()
		return Result{Err: "timeout"}
	default:
		return Result{Err: "dial: connection refused"}
	}
}

type change struct {
	at      time.Duration
	target  string
	healthy bool
}

// TestMonitorWindows runs the probe loop under synctest and asserts the
// exact times at which targets turn unhealthy and healthy again.
func TestMonitorWindows(t *testing.T) {
	cfg := Config{Interval: time.Second, Timeout: 500 * time.Millisecond, SampleSize: 4, SuccessesRequired: 3}
	tests := []struct {
		name  string
		fault string // "down" or "hang"
		// The fault starts just after the probe at 0 and ends at recoverAt.
		recoverAt time.Duration
		want      []change
	}{
		{
			name:      "hang: detection window includes the timeout",
			fault:     "hang",
			recoverAt: 5 * time.Second,
			want: []change{
				{0, "a", true},
				{cfg.DetectionWindow(), "a", false}, // 2.5s
				// Probes at 5s, 6s, 7s pass; the third makes 3 of 4.
				{7 * time.Second, "a", true},
			},
		},
		{
			name:      "refused: fails at once",
			fault:     "down",
			recoverAt: 10 * time.Second,
			want: []change{
				{0, "a", true},
				{2 * time.Second, "a", false},
				{10*time.Second + 2*time.Second, "a", true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &scripted{state: map[string]string{"a": "up", "b": "up"}}
				var mu sync.Mutex
				var got []change
				t0 := time.Now()
				m := NewMonitor(cfg, []Target{{Name: "a"}, {Name: "b"}}, Options{
					Probe: s.probe,
					OnResult: func(u Update) {
						if u.Changed {
							mu.Lock()
							got = append(got, change{time.Since(t0), u.Target.Name, u.Status.Healthy})
							mu.Unlock()
						}
					},
				})
				ctx := t.Context()
				m.Step(ctx) // initial round at 0
				if err := m.Start(ctx); err != nil {
					t.Fatal(err)
				}
				s.set("a", tt.fault)
				time.Sleep(tt.recoverAt - time.Millisecond) // fake time: just before the probe at recoverAt
				s.set("a", "up")
				time.Sleep(15 * time.Second)
				if err := m.Close(ctx); err != nil {
					t.Fatal(err)
				}

				want := append([]change{{0, "b", true}}, tt.want...)
				mu.Lock()
				defer mu.Unlock()
				// b's first change is interleaved at 0; compare as sets by order of a.
				var gotA, wantA []change
				for _, c := range got {
					if c.target == "a" {
						gotA = append(gotA, c)
					} else if c != (change{0, "b", true}) {
						t.Errorf("unexpected change of b: %+v", c)
					}
				}
				for _, c := range want {
					if c.target == "a" {
						wantA = append(wantA, c)
					}
				}
				if len(gotA) != len(wantA) {
					t.Fatalf("changes of a: got %+v, want %+v", gotA, wantA)
				}
				for i := range wantA {
					if gotA[i] != wantA[i] {
						t.Errorf("change %d: got %+v, want %+v", i, gotA[i], wantA[i])
					}
				}
				st, _ := m.Status("a")
				if !st.Healthy || st.Readiness.Role != "primary" || st.Readiness.Epoch != 2 {
					t.Errorf("status after recovery: %+v", st)
				}
				if st.Latency != time.Millisecond {
					t.Errorf("latency %s, want 1ms", st.Latency)
				}
			})
		})
	}
}

// TestMonitorStatusRecent checks the ring of recent results and that the
// start times come from the injected clock.
func TestMonitorStatusRecent(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var pass bool
	m := NewMonitor(Config{SampleSize: 2, SuccessesRequired: 1}, []Target{{Name: "a"}}, Options{
		Now:  func() time.Time { return now },
		Keep: 3,
		Probe: func(ctx context.Context, t Target) Result {
			if pass {
				return Result{OK: true, Status: 200, Latency: 10 * time.Millisecond}
			}
			return Result{Status: 503, Err: "status 503"}
		},
	})
	for i, p := range []bool{true, false, true, false, false} {
		pass = p
		m.Step(t.Context())
		now = now.Add(time.Second)
		_ = i
	}
	st, ok := m.Status("a")
	if !ok {
		t.Fatal("no status")
	}
	if len(st.Recent) != 3 {
		t.Fatalf("recent %d, want 3", len(st.Recent))
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, r := range st.Recent {
		if want := base.Add(time.Duration(i+2) * time.Second); !r.Start.Equal(want) {
			t.Errorf("recent[%d] start %s, want %s", i, r.Start, want)
		}
	}
	if st.Healthy {
		t.Error("two failures with need 1 of 2: still healthy")
	}
	if !st.LastPass.Start.Equal(base.Add(2 * time.Second)) {
		t.Errorf("last pass at %s", st.LastPass.Start)
	}
	if st.Latency != 0 {
		t.Errorf("latency %s with no pass in the window", st.Latency)
	}
	if _, ok := m.Status("nope"); ok {
		t.Error("status of unknown target")
	}
}
