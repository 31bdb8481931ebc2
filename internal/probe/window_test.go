package probe

import (
	"strings"
	"testing"
)

func TestWindow(t *testing.T) {
	// Results are written P (pass) and F (fail); want is the health after
	// each result, H or U.
	tests := []struct {
		name       string
		size, need int
		results    string
		want       string
	}{
		{"front door default: two failures turn it", 4, 3, "PFFPPP", "HHUUUH"},
		{"first failure fills the window", 4, 3, "FPPP", "UUUH"},
		{"recovery needs need passes", 4, 3, "PFFFFPPP", "HHUUUUUH"},
		{"mixed window stays unhealthy", 4, 3, "PFFPFP", "HHUUUU"},
		{"need equals size: one failure turns it", 4, 4, "PFPPPP", "HUUUUH"},
		{"need one: size failures turn it", 3, 1, "PFFFP", "HHHUH"},
		{"size one", 1, 1, "PFPF", "HUHU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWindow(tt.size, tt.need)
			if w.Healthy() || w.Started() {
				t.Fatal("new window is healthy or started")
			}
			var got strings.Builder
			prev := false
			for i, c := range tt.results {
				changed := w.Add(c == 'P')
				h := w.Healthy()
				if wantChanged := i == 0 || h != prev; changed != wantChanged {
					t.Errorf("result %d: changed=%v, want %v", i, changed, wantChanged)
				}
				prev = h
				if h {
					got.WriteByte('H')
				} else {
					got.WriteByte('U')
				}
			}
			if got.String() != tt.want {
				t.Errorf("health %s, want %s", got.String(), tt.want)
			}
		})
	}
}

func TestConfigWindows(t *testing.T) {
	tests := []struct {
		cfg             Config
		failures        int
		detect, recover string
	}{
		{Config{Interval: 1e9, Timeout: 5e8, SampleSize: 4, SuccessesRequired: 3}, 2, "2.5s", "3s"},
		{Config{Interval: 30e9, Timeout: 1e9, SampleSize: 4, SuccessesRequired: 3}, 2, "1m1s", "1m30s"},
		{Config{Interval: 100e9, Timeout: 1e9, SampleSize: 4, SuccessesRequired: 2}, 3, "5m1s", "3m20s"},
	}
	for _, tt := range tests {
		c := tt.cfg.withDefaults()
		if got := c.FailuresToUnhealthy(); got != tt.failures {
			t.Errorf("%+v: failures %d, want %d", tt.cfg, got, tt.failures)
		}
		if got := c.DetectionWindow().String(); got != tt.detect {
			t.Errorf("%+v: detection %s, want %s", tt.cfg, got, tt.detect)
		}
		if got := c.RecoveryWindow().String(); got != tt.recover {
			t.Errorf("%+v: recovery %s, want %s", tt.cfg, got, tt.recover)
		}
	}
}
