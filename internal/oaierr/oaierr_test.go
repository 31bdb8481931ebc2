package oaierr

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

func TestMarshal(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		status                int
		typ, code, param, msg string
		want                  string
	}{
		{"null param and code", 404, "", "", "", "Invalid URL (GET /x)",
			`{"error":{"message":"Invalid URL (GET /x)","type":"invalid_request_error","param":null,"code":null}}` + "\n"},
		{"code, null param", 429, "", "rate_limit_exceeded", "", "slow down",
			`{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}` + "\n"},
		{"param and code", 400, "", "invalid_value", "temperature", "too hot",
			`{"error":{"message":"too hot","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}` + "\n"},
		{"param, null code", 400, "", "", "messages", "empty",
			`{"error":{"message":"empty","type":"invalid_request_error","param":"messages","code":null}}` + "\n"},
		{"explicit type wins", 401, "authentication_error", "invalid_api_key", "", "no key",
			`{"error":{"message":"no key","type":"authentication_error","param":null,"code":"invalid_api_key"}}` + "\n"},
		{"server error", 503, "", "no_origin", "", "none",
			`{"error":{"message":"none","type":"server_error","param":null,"code":"no_origin"}}` + "\n"},
		{"escaping", 400, "", "", "", `a "quoted" <b> & é` + "\n",
			`{"error":{"message":"a \"quoted\" \u003cb\u003e \u0026 é\n","type":"invalid_request_error","param":null,"code":null}}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Marshal(tc.status, tc.typ, tc.code, tc.param, tc.msg)
			if string(got) != tc.want {
				t.Errorf("Marshal:\n got %s\nwant %s", got, tc.want)
			}
			var b Body
			if err := json.Unmarshal(got, &b); err != nil {
				t.Fatal(err)
			}
			if b.Error.Message != tc.msg || (b.Error.Code == nil) != (tc.code == "") || (b.Error.Param == nil) != (tc.param == "") {
				t.Errorf("round trip: %+v", b.Error)
			}
		})
	}
}

func TestTypeFor(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   string
	}{
		{400, "invalid_request_error"},
		{401, "invalid_request_error"},
		{404, "invalid_request_error"},
		{413, "invalid_request_error"},
		{428, "invalid_request_error"},
		{429, "requests"},
		{430, "invalid_request_error"},
		{499, "invalid_request_error"},
		{500, "server_error"},
		{502, "server_error"},
		{503, "server_error"},
		{504, "server_error"},
	} {
		if got := TypeFor(tc.status); got != tc.want {
			t.Errorf("TypeFor(%d) = %q, want %q", tc.status, got, tc.want)
		}
	}
}

func TestWrite(t *testing.T) {
	body := Marshal(429, "", "rate_limit_exceeded", "", "slow down")
	for _, tc := range []struct {
		retryAfter time.Duration
		want       string // Retry-After; "" is absent
	}{
		{0, ""},
		{-time.Second, ""},
		{time.Nanosecond, "1"},
		{time.Millisecond, "1"},
		{999 * time.Millisecond, "1"},
		{time.Second, "1"},
		{time.Second + time.Nanosecond, "2"},
		{1500 * time.Millisecond, "2"},
		{2 * time.Second, "2"},
		{time.Minute, "60"},
	} {
		t.Run(tc.retryAfter.String(), func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set("X-Kept", "yes")
			Write(rec, http.StatusTooManyRequests, body, tc.retryAfter)
			res := rec.Result()
			if res.StatusCode != 429 || rec.Body.String() != string(body) {
				t.Errorf("answer %d %q", res.StatusCode, rec.Body.String())
			}
			h := res.Header
			if h.Get("Content-Type") != "application/json" || h.Get("Content-Length") != strconv.Itoa(len(body)) || h.Get("X-Kept") != "yes" {
				t.Errorf("headers %v", h)
			}
			if got, ok := h["Retry-After"]; (tc.want == "" && ok) || (tc.want != "" && (len(got) != 1 || got[0] != tc.want)) {
				t.Errorf("Retry-After %q, want %q", got, tc.want)
			}
		})
	}
}

func BenchmarkMarshal(b *testing.B) {
	for b.Loop() {
		Marshal(400, "", "invalid_value", "temperature", "temperature must be between 0 and 2")
	}
}
