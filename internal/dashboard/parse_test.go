package dashboard

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/drill"
	"github.com/understudy/understudy/internal/edge"
)

func TestParseRequests(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]counter
		wantErr bool
	}{
		{"empty", "", map[string]counter{}, false},
		{"codes summed, 5xx and 429 are errors", `# TYPE understudy_edge_requests_total counter
understudy_edge_requests_total{code="200",origin="eastus2"} 10
understudy_edge_requests_total{code="429",origin="eastus2"} 2
understudy_edge_requests_total{code="503",origin="eastus2"} 3
understudy_edge_requests_total{code="400",origin="eastus2"} 1
understudy_edge_requests_total{origin="centralus",code="200"} 5 1700000000000
`, map[string]counter{"eastus2": {Total: 16, Errors: 5}, "centralus": {Total: 5}}, false},
		{"other metrics and prefixes ignored", `understudy_edge_requests_total_created{origin="x"} 1
understudy_edge_retries_total{origin="eastus2",reason="5xx"} 9
understudy_edge_requests_total{code="200",origin="none"} 1e3
`, map[string]counter{"none": {Total: 1000}}, false},
		{"escaped label values", `understudy_edge_requests_total{code="200",origin="a\"b\\c"} 2`, map[string]counter{`a"b\c`: {Total: 2}}, false},
		{"no origin label", `understudy_edge_requests_total{code="200"} 2`, map[string]counter{}, false},
		{"unterminated labels", `understudy_edge_requests_total{code="200"`, nil, true},
		{"bad value", `understudy_edge_requests_total{code="200",origin="a"} many`, nil, true},
		{"no value", `understudy_edge_requests_total{code="200",origin="a"}`, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRequests(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && !maps.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func FuzzParseRequests(f *testing.F) {
	f.Add(`understudy_edge_requests_total{code="200",origin="eastus2"} 10`)
	f.Add(`understudy_edge_requests_total{code="503",origin="a\"b"} 1 123`)
	f.Add(`understudy_edge_requests_total{`)
	f.Add(`understudy_edge_requests_total{a="\`)
	// Lines are independent: the input twice counts everything twice.
	f.Fuzz(func(t *testing.T, in string) {
		once, err := parseRequests(strings.NewReader(in))
		if err != nil {
			return
		}
		twice, err := parseRequests(strings.NewReader(in + "\n" + in))
		if err != nil {
			t.Fatalf("input parsed alone but not twice: %v", err)
		}
		if len(once) != len(twice) {
			t.Fatalf("origins: once %v, twice %v", once, twice)
		}
		for origin, c := range once {
			if origin == "" {
				t.Errorf("counter without an origin: %v", once)
			}
			d := twice[origin]
			if !same(d.Total, 2*c.Total) || !same(d.Errors, 2*c.Errors) {
				t.Errorf("origin %q: once %+v, twice %+v", origin, c, d)
			}
		}
	})
}

// same compares floats, NaN equal to NaN.
func same(a, b float64) bool { return a == b || a != a && b != b }

func TestRates(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	one := func(total, errs float64) map[string]counter { return map[string]counter{"a": {total, errs}} }
	tests := []struct {
		name    string
		samples []sample
		want    map[string]Rate
		ok      bool
	}{
		{"none", nil, map[string]Rate{}, false},
		{"one", []sample{{at(0), one(5, 0)}}, map[string]Rate{}, false},
		{"too close", []sample{{at(0), one(5, 0)}, {at(0.2), one(6, 0)}}, map[string]Rate{}, false},
		{"two", []sample{{at(0), one(5, 0)}, {at(2), one(25, 4)}}, map[string]Rate{"a": {10, 2, true}}, true},
		{"oldest inside the window", []sample{{at(0), one(0, 0)}, {at(4), one(100, 0)}, {at(6), one(120, 0)}, {at(8), one(160, 0)}},
			map[string]Rate{"a": {15, 0, true}}, true}, // window 5s: from t=4 to t=8
		{"counter reset", []sample{{at(0), one(500, 0)}, {at(2), one(8, 0)}}, map[string]Rate{"a": {4, 0, true}}, true},
		{"origin first seen", []sample{{at(0), map[string]counter{}}, {at(1), one(3, 0)}}, map[string]Rate{"a": {3, 0, true}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := rates(tc.samples, 5*time.Second, 500*time.Millisecond)
			if ok != tc.ok || !maps.Equal(got, tc.want) {
				t.Errorf("rates = %v %v, want %v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestCodes(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	codes := newCodes(c.Now)
	a, b := codes.mint(PurposeSession), codes.mint(PurposeSession)
	if a == b || len(a) < 22 {
		t.Fatalf("codes %q and %q", a, b)
	}
	if !codes.redeem(a, PurposeSession) || codes.redeem(a, PurposeSession) {
		t.Error("a code must work exactly once")
	}
	c.Add(CodeTTL)
	if codes.redeem(b, PurposeSession) {
		t.Error("an expired code worked")
	}
	first := codes.mint(PurposeReport)
	for range maxCodes {
		c.Add(time.Second)
		codes.mint(PurposeReport)
	}
	if len(codes.m) != maxCodes || codes.redeem(first, PurposeReport) {
		t.Errorf("%d codes kept; the oldest must be forgotten first", len(codes.m))
	}
}

func TestReadSSE(t *testing.T) {
	in := "id: 1\nevent: health\ndata: {\"seq\":1,\"kind\":\"health\",\"message\":\"a\"}\n\n: ping\n\n" +
		"data: not json\n\n" +
		"id: 2\ndata:{\"seq\":2,\"kind\":\"route\",\"message\":\"b\"}\n\n"
	var got []edge.Event
	n, err := readSSE(strings.NewReader(in), func(ev edge.Event) { got = append(got, ev) })
	if err != nil || n != 2 || got[0].Kind != "health" || got[1].Seq != 2 || got[1].Message != "b" {
		t.Errorf("readSSE = %d %v %+v", n, err, got)
	}
}

// TestScenariosMatchDrill: the page offers exactly the drills `understudy
// drill` runs (the list is copied so the controller does not link the
// drill code).
func TestScenariosMatchDrill(t *testing.T) {
	if got, want := Scenarios, drill.ScenarioNames(); !slices.Equal(got, want) {
		t.Errorf("dashboard.Scenarios = %v, drill.ScenarioNames() = %v", got, want)
	}
}
