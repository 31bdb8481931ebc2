package lease

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

const ttl = 3 * time.Second

// the margin for a 3 s TTL: 1% + 50 ms
const wantMargin = 80 * time.Millisecond

func TestHolderStartsWithoutALease(t *testing.T) {
	h := NewHolder("eastus2", 1, ttl/3, nil)
	if err := h.Check(context.Background()); !errors.Is(err, ErrExpired) {
		t.Fatalf("Check = %v, want ErrExpired", err)
	}
}

func TestLeaseEndsExactlyTTLMinusMarginAfterSending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGrantor(ttl, "eastus2", 1)
		// The grant takes 200 ms to arrive: the lease still counts from the send.
		slow := func(ctx context.Context, region string, epoch int64) (Grant, error) {
			time.Sleep(200 * time.Millisecond)
			return g.Renew(region, epoch)
		}
		h := NewHolder("eastus2", 1, ttl/3, nil, slow)
		sent := time.Now()
		if err := h.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		_, remaining, _, _ := h.Status()
		if want := ttl - wantMargin - 200*time.Millisecond; remaining != want {
			t.Errorf("remaining = %s, want %s", remaining, want)
		}
		time.Sleep(time.Until(sent.Add(ttl-wantMargin)) - time.Nanosecond)
		if err := h.Check(context.Background()); err != nil {
			t.Fatalf("1ns before the end: %v", err)
		}
		time.Sleep(time.Nanosecond)
		if err := h.Check(context.Background()); !errors.Is(err, ErrExpired) {
			t.Fatalf("at the end: %v, want ErrExpired", err)
		}
	})
}

func TestHolderFallsBackToTheStandby(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		controllerDown := func(context.Context, string, int64) (Grant, error) {
			return Grant{}, errors.New("connection refused")
		}
		standby := NewGrantor(ttl, "eastus2", 1)
		h := NewHolder("eastus2", 1, ttl/3, nil, controllerDown,
			func(_ context.Context, r string, e int64) (Grant, error) { return standby.Renew(r, e) })
		if err := h.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, rem, from, _ := h.Status(); from != 1 || rem != ttl-wantMargin {
			t.Errorf("from %d remaining %s, want the standby (1) and %s", from, rem, ttl-wantMargin)
		}
		// A stopped standby does not vouch, and that is not a reason to fence.
		standby.Stop()
		err := h.Step(context.Background())
		if err == nil || errors.Is(err, ErrSuperseded) {
			t.Fatalf("Step with nobody vouching = %v, want a plain error", err)
		}
		if h.Check(context.Background()) != nil {
			t.Error("the lease granted earlier should still be valid")
		}
	})
}

func TestSupersededIsFinal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGrantor(ttl, "eastus2", 1)
		h := NewHolder("eastus2", 1, ttl/3, nil, func(_ context.Context, r string, e int64) (Grant, error) { return g.Renew(r, e) })
		if err := h.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		g.Reset("centralus", 2) // promoted elsewhere
		if err := h.Step(context.Background()); !errors.Is(err, ErrSuperseded) {
			t.Fatalf("Step = %v, want ErrSuperseded", err)
		}
		// Even with time left on the old grant, writes stop at once.
		if err := h.Check(context.Background()); !errors.Is(err, ErrSuperseded) {
			t.Fatalf("Check = %v, want ErrSuperseded", err)
		}
	})
}

func TestGrantorRefusals(t *testing.T) {
	tests := []struct {
		name       string
		region     string
		epoch      int64
		stop       bool
		superseded bool
	}{
		{"older epoch", "eastus2", 1, false, true},
		{"other region same epoch", "centralus", 2, false, true},
		{"newer epoch than grantor", "eastus2", 3, false, false},
		{"stopped", "eastus2", 2, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGrantor(ttl, "eastus2", 2)
			if tt.stop {
				g.Stop()
			}
			_, err := g.Renew(tt.region, tt.epoch)
			var ref *Refusal
			if !errors.As(err, &ref) {
				t.Fatalf("Renew = %v, want a Refusal", err)
			}
			if errors.Is(err, ErrSuperseded) != tt.superseded {
				t.Errorf("superseded = %v, want %v (%v)", !tt.superseded, tt.superseded, err)
			}
		})
	}
}

// The fencing rule end to end: a primary renews from the controller and the
// standby every TTL/3; at some moment it is cut off from both. The
// controller stops both grantors and waits for the longer in-force time;
// at that moment the primary must already refuse writes, whatever the
// phase of its renewals when the cut happened.
func TestPromotionWaitsOutEveryLease(t *testing.T) {
	for _, cutAt := range []time.Duration{0, 1, 333 * time.Millisecond, 999 * time.Millisecond, 1500 * time.Millisecond, 2 * time.Second} {
		synctest.Test(t, func(t *testing.T) {
			ctrl := NewGrantor(ttl, "eastus2", 1)
			standby := NewGrantor(ttl, "eastus2", 1)
			var cut atomic.Bool
			via := func(g *Grantor) Renewer {
				return func(_ context.Context, r string, e int64) (Grant, error) {
					if cut.Load() {
						return Grant{}, errors.New("network unreachable")
					}
					time.Sleep(100 * time.Millisecond) // one-way latency to the grantor
					grant, err := g.Renew(r, e)
					time.Sleep(100 * time.Millisecond) // and back
					return grant, err
				}
			}
			h := NewHolder("eastus2", 1, ttl/3, nil, via(ctrl), via(standby))
			ctx, cancel := context.WithCancel(context.Background())
			h.Start(ctx)
			time.Sleep(5*time.Second + cutAt)
			cut.Store(true)
			wait := max(ctrl.Stop(), standby.Stop())
			time.Sleep(wait)
			if err := h.Check(context.Background()); !errors.Is(err, ErrExpired) {
				t.Errorf("cut at +%s: after waiting %s the old primary still holds its lease (%v)", cutAt, wait, err)
			}
			cancel()
			h.Close(context.Background())
		})
	}
}

func TestHTTPRoundTrip(t *testing.T) {
	g := NewGrantor(ttl, "eastus2", 4)
	srv := httptest.NewServer(Handler(g, "/v1/lease", "renew-secret-0123456789", "admin-secret-0123456789"))
	defer srv.Close()
	renew := HTTPRenewer(srv.Client(), srv.URL+"/v1/lease", "renew-secret-0123456789")
	ctx := context.Background()

	got, err := renew(ctx, "eastus2", 4)
	if err != nil || got != (Grant{Epoch: 4, TTL: ttl}) {
		t.Fatalf("renew = %+v, %v", got, err)
	}
	if _, err := renew(ctx, "eastus2", 3); !errors.Is(err, ErrSuperseded) {
		t.Errorf("older epoch over HTTP = %v, want ErrSuperseded", err)
	}
	if _, err := HTTPRenewer(srv.Client(), srv.URL+"/v1/lease", "wrong")(ctx, "eastus2", 4); err == nil || errors.Is(err, ErrSuperseded) {
		t.Errorf("wrong token = %v, want a plain error", err)
	}
	if _, err := StopHTTP(ctx, srv.Client(), srv.URL+"/v1/lease", "renew-secret-0123456789"); err == nil {
		t.Error("stop with the renew token must be refused")
	}
	inForce, err := StopHTTP(ctx, srv.Client(), srv.URL+"/v1/lease", "admin-secret-0123456789")
	if err != nil || inForce <= 0 || inForce > ttl {
		t.Errorf("stop = %s, %v; want (0, %s]", inForce, err, ttl)
	}
	if _, err := renew(ctx, "eastus2", 4); err == nil || errors.Is(err, ErrSuperseded) {
		t.Errorf("renew after stop = %v, want a refusal that is not superseded", err)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/lease/renew", nil)
	req.Header.Set("Authorization", "Bearer renew-secret-0123456789")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("empty body: %s", resp.Status)
	}
}
