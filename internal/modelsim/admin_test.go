package modelsim

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseFaults(t *testing.T) {
	tests := []struct {
		in      string
		want    Faults
		wantErr string
	}{
		{`{}`, Faults{}, ""},
		{`{"error_rate":0.25,"error_status":503,"error_code":"overloaded","rate_limit_rate":1,"retry_after":"1500ms",
		   "hang":true,"latency":"2s","cut_after":3,"no_done":true,"malformed":true,"stall_after":4,"version":"2024-07-18"}`,
			Faults{ErrorRate: 0.25, ErrorStatus: 503, ErrorCode: "overloaded", RateLimitRate: 1, RetryAfter: Duration(1500 * time.Millisecond),
				Hang: true, Latency: Duration(2 * time.Second), CutAfter: 3, NoDone: true, Malformed: true, StallAfter: 4, Version: "2024-07-18"}, ""},
		{`{"error_rat":0.5}`, Faults{}, `unknown field "error_rat"`},
		{`{"error_rate":1.5}`, Faults{}, "error_rate: must be between 0 and 1"},
		{`{"rate_limit_rate":-0.1}`, Faults{}, "rate_limit_rate"},
		{`{"error_status":200}`, Faults{}, "error_status"},
		{`{"latency":"soon"}`, Faults{}, "duration string"},
		{`{"latency":2}`, Faults{}, "duration string"},
		{`{"retry_after":"-1s"}`, Faults{}, "retry_after"},
		{`{"cut_after":-1}`, Faults{}, "cut_after"},
		{`{"stall_after":-1}`, Faults{}, "stall_after"},
		{`{} {}`, Faults{}, "trailing data"},
		{`[]`, Faults{}, "parse faults"},
	}
	for _, tt := range tests {
		got, err := ParseFaults([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseFaults(%s) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseFaults(%s) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		// Round trip through the JSON the admin API answers.
		b, _ := json.Marshal(got)
		if again, err := ParseFaults(b); err != nil || again != got {
			t.Errorf("round trip of %s: %+v, %v", b, again, err)
		}
	}
	if b, _ := json.Marshal(Faults{Latency: Duration(2 * time.Second)}); string(b) != `{"latency":"2s"}` {
		t.Errorf("marshal = %s", b)
	}
}

func adminReq(t *testing.T, method, url, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, b := do(t, req)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestAdminFaults(t *testing.T) {
	s, ts := start(t, testConfig())
	u := ts.URL + "/admin/faults"
	steps := []struct {
		method, body string
		hdr          []string
		wantStatus   int
		wantBody     string // "" : not checked
		wantFaults   Faults
	}{
		{"GET", "", nil, 200, `{}`, Faults{}},
		{"PUT", `{"error_rate":0.5,"latency":"2s"}`, nil, 200, `{"error_rate":0.5,"latency":"2s"}`, Faults{ErrorRate: 0.5, Latency: Duration(2 * time.Second)}},
		{"GET", "", nil, 200, `{"error_rate":0.5,"latency":"2s"}`, Faults{ErrorRate: 0.5, Latency: Duration(2 * time.Second)}},
		// Rejected bodies leave the faults as they were.
		{"PUT", `{"error_rate":0.5,"bogus":true}`, nil, 400, "", Faults{ErrorRate: 0.5, Latency: Duration(2 * time.Second)}},
		{"PUT", `{"error_rate":7}`, nil, 400, "", Faults{ErrorRate: 0.5, Latency: Duration(2 * time.Second)}},
		{"PUT", `{"hang":true}`, []string{"Sec-Fetch-Site", "cross-site"}, 403, "", Faults{ErrorRate: 0.5, Latency: Duration(2 * time.Second)}},
		{"PUT", `{"hang":true}`, nil, 200, `{"hang":true}`, Faults{Hang: true}}, // replace, not merge
		{"DELETE", "", nil, 200, `{}`, Faults{}},
		{"POST", `{}`, nil, 404, "", Faults{}},
	}
	for i, st := range steps {
		status, body := adminReq(t, st.method, u, st.body, st.hdr...)
		if status != st.wantStatus || (st.wantBody != "" && body != st.wantBody) {
			t.Errorf("step %d %s %s: %d %s; want %d %s", i, st.method, st.body, status, body, st.wantStatus, st.wantBody)
		}
		if status == 400 {
			wantError(t, []byte(body), "", "")
		}
		if got := s.Faults(); got != st.wantFaults {
			t.Errorf("step %d: faults %+v, want %+v", i, got, st.wantFaults)
		}
	}
}

func TestAdminToken(t *testing.T) {
	cfg := testConfig()
	cfg.AdminToken = "s3cret"
	s, ts := start(t, cfg)
	u := ts.URL + "/admin/faults"
	tests := []struct {
		method string
		hdr    []string
		want   int
	}{
		{"GET", nil, 401},
		{"GET", []string{"Authorization", "Bearer wrong"}, 401},
		{"GET", []string{"Authorization", "s3cret"}, 401},
		{"PUT", []string{"api-key", "s3cret"}, 401},
		{"DELETE", nil, 401},
		{"GET", []string{"Authorization", "Bearer s3cret"}, 200},
		{"PUT", []string{"Authorization", "Bearer s3cret"}, 200},
	}
	for _, tt := range tests {
		status, body := adminReq(t, tt.method, u, `{"error_rate":1}`, tt.hdr...)
		if status != tt.want {
			t.Errorf("%s %v: %d %s, want %d", tt.method, tt.hdr, status, body, tt.want)
		}
		if status == 401 {
			wantError(t, []byte(body), "invalid_api_key", "")
			if s.Faults() != (Faults{}) {
				t.Fatalf("unauthorised %s changed the faults", tt.method)
			}
		}
	}
	if s.Faults().ErrorRate != 1 {
		t.Errorf("authorised PUT did not set faults: %+v", s.Faults())
	}
	// Model endpoints and health need no admin token.
	if resp, _ := post(t, ts.URL+"/v1/embeddings", `{"input":"x"}`); resp.StatusCode != 500 {
		t.Errorf("embeddings status %d, want the injected 500", resp.StatusCode)
	}
	if status, body := adminReq(t, "GET", ts.URL+"/healthz", ""); status != 200 || body != "ok" {
		t.Errorf("healthz %d %q", status, body)
	}
}

func TestStartClose(t *testing.T) {
	s := New(testConfig(), nil)
	s.SetFaults(Faults{StallAfter: 1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context(), ln); err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	if status, _ := adminReq(t, "GET", url+"/healthz", ""); status != 200 {
		t.Fatalf("healthz %d", status)
	}
	// A stalled stream: the client has its first chunk, the handler waits.
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(streamBody(5)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if lines, err := readLines(resp.Body, 2); err != nil || !strings.Contains(lines[1], `"content":"`) {
		t.Fatalf("first chunks %q: %v", lines, err)
	}
	// Close drains within its context, then cuts what is left.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if lines, err := readLines(resp.Body, 1); err == nil {
		t.Errorf("stalled stream continued after Close: %q", lines)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("still serving after Close")
	}
}
