package linkproxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const testToken = "admin-token-0123456789"

func TestAdminAPI(t *testing.T) {
	echo := startEcho(t)
	db := startProxy(t, Config{Upstream: echo})
	api := startProxy(t, Config{Upstream: echo, Latency: 5 * time.Millisecond})
	srv := httptest.NewServer(AdminHandler(map[string]*Proxy{"db": db, "api": api}, testToken))
	t.Cleanup(srv.Close)

	tests := []struct {
		name      string
		method    string
		path      string
		token     string
		body      string
		header    map[string]string
		wantCode  int
		wantState State // of db afterwards, when set
		wantLat   time.Duration
		wantInMsg string // part of the error message
	}{
		{name: "no token", method: "GET", path: "/links", wantCode: 401, wantInMsg: "bearer token"},
		{name: "wrong token", method: "GET", path: "/links", token: "nope", wantCode: 401},
		{name: "list", method: "GET", path: "/links", token: testToken, wantCode: 200},
		{name: "one", method: "GET", path: "/links/db", token: testToken, wantCode: 200, wantState: StateUp},
		{name: "unknown link", method: "POST", path: "/links/nope/cut", token: testToken, wantCode: 404, wantInMsg: "no link named"},
		{name: "unknown action", method: "POST", path: "/links/db/melt", token: testToken, wantCode: 404, wantInMsg: "unknown action"},
		{name: "cut", method: "POST", path: "/links/db/cut", token: testToken, wantCode: 200, wantState: StateCut},
		{name: "restore after cut", method: "POST", path: "/links/db/restore", token: testToken, wantCode: 200, wantState: StateUp},
		{name: "blackhole", method: "POST", path: "/links/db/blackhole", token: testToken, wantCode: 200, wantState: StateBlackhole},
		{name: "restore after blackhole", method: "POST", path: "/links/db/restore", token: testToken, wantCode: 200, wantState: StateUp},
		{name: "latency", method: "PUT", path: "/links/db/latency", token: testToken, body: `{"latency":"20ms","jitter":"2ms"}`, wantCode: 200, wantLat: 20 * time.Millisecond},
		{name: "latency without jitter", method: "PUT", path: "/links/db/latency", token: testToken, body: `{"latency":"7ms"}`, wantCode: 200, wantLat: 7 * time.Millisecond},
		{name: "latency missing", method: "PUT", path: "/links/db/latency", token: testToken, body: `{}`, wantCode: 400, wantInMsg: "latency: required"},
		{name: "latency bad", method: "PUT", path: "/links/db/latency", token: testToken, body: `{"latency":"soon"}`, wantCode: 400, wantInMsg: "latency"},
		{name: "latency negative", method: "PUT", path: "/links/db/latency", token: testToken, body: `{"latency":"-1ms"}`, wantCode: 400},
		{name: "jitter bad", method: "PUT", path: "/links/db/latency", token: testToken, body: `{"latency":"1ms","jitter":"x"}`, wantCode: 400, wantInMsg: "jitter"},
		{name: "unknown field", method: "PUT", path: "/links/db/latency", token: testToken, body: `{"latency":"1ms","loss":0.5}`, wantCode: 400},
		{name: "wrong method", method: "DELETE", path: "/links/db", token: testToken, wantCode: 405},
		{name: "cross-origin browser request", method: "POST", path: "/links/db/cut", token: testToken,
			header: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, wantCode: 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.wantCode, body)
			}
			if tc.wantInMsg != "" && !strings.Contains(string(body), tc.wantInMsg) {
				t.Errorf("body %s does not mention %q", body, tc.wantInMsg)
			}
			if tc.wantState != "" {
				var ls LinkStatus
				if err := json.Unmarshal(body, &ls); err != nil {
					t.Fatalf("decode %s: %v", body, err)
				}
				if ls.State != tc.wantState || ls.Name != "db" {
					t.Errorf("answered %+v, want db in state %s", ls, tc.wantState)
				}
				if got := db.Status().State; got != tc.wantState {
					t.Errorf("db state = %s, want %s", got, tc.wantState)
				}
			}
			if tc.wantLat != 0 {
				var ls LinkStatus
				if err := json.Unmarshal(body, &ls); err != nil {
					t.Fatal(err)
				}
				if got := db.Latency(); got != tc.wantLat || ls.Latency != tc.wantLat.String() {
					t.Errorf("db latency = %v (answered %q), want %v", got, ls.Latency, tc.wantLat)
				}
			}
		})
	}

	t.Run("list shows every link", func(t *testing.T) {
		req, _ := http.NewRequest("GET", srv.URL+"/links", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Links []LinkStatus }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		if len(out.Links) != 2 || out.Links[0].Name != "api" || out.Links[1].Name != "db" {
			t.Fatalf("links = %+v, want api and db in order", out.Links)
		}
		if out.Links[0].Latency != "5ms" || out.Links[0].Upstream != echo || out.Links[0].Listen != api.Addr().String() {
			t.Errorf("api link = %+v", out.Links[0])
		}
	})
}

func TestAdminWithoutToken(t *testing.T) {
	p := startProxy(t, Config{Upstream: startEcho(t)})
	srv := httptest.NewServer(AdminHandler(map[string]*Proxy{"x": p}, ""))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Post(srv.URL+"/links/x/cut", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || p.Status().State != StateCut {
		t.Errorf("status %d, state %s; want 200, cut", resp.StatusCode, p.Status().State)
	}
}
