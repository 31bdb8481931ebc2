package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A headless Chromium driven over the DevTools protocol (a websocket and
// JSON messages; no browser automation library needed for the few calls
// the dashboard test makes).

// chromiumPath is Debian's chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// browser is one headless Chromium with one page.
type browser struct {
	t    *testing.T
	conn *websocket.Conn

	mu      sync.Mutex
	next    int64
	pending map[int64]chan cdpAnswer
	readErr error
}

type cdpAnswer struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// needChromium skips the test without Chromium, except under CI where it
// fails: CI installs it.
func needChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing; .ci/run installs it (apt-get install -y chromium)", chromiumPath)
	}
	t.Skipf("%s is missing: apt-get install -y chromium", chromiumPath)
}

// launchBrowser starts Chromium with a fresh profile and attaches to its
// page. The browser is killed when the test ends. A Chromium that exits
// before it serves DevTools is started again, twice at most, with its
// output and exit status logged: CI once saw one exit at start-up with
// nothing but the usual noise in its output.
func launchBrowser(t *testing.T, width, height int) *browser {
	t.Helper()
	b := &browser{t: t, pending: map[int64]chan cdpAnswer{}}
	var port string
	for attempt := 1; ; attempt++ {
		var err error
		if port, err = b.startChromium(width, height); err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("chromium, attempt %d: %v", attempt, err)
		}
		t.Logf("chromium, attempt %d: %v; starting it again", attempt, err)
	}
	t.Cleanup(func() {
		if b.conn != nil {
			b.conn.Close(websocket.StatusNormalClosure, "")
		}
	})
	var ws string
	waitFor(t, 10*time.Second, "chromium's page target", func() bool {
		resp, err := http.Get("http://127.0.0.1:" + port + "/json/list")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var targets []struct {
			Type string `json:"type"`
			WS   string `json:"webSocketDebuggerUrl"`
		}
		json.NewDecoder(resp.Body).Decode(&targets)
		for _, tg := range targets {
			if tg.Type == "page" {
				ws = tg.WS
			}
		}
		return ws != ""
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, ws, nil)
	if err != nil {
		t.Fatalf("devtools websocket: %v", err)
	}
	conn.SetReadLimit(64 << 20) // screenshots
	b.conn = conn
	go b.readLoop()
	b.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}, nil)
	return b
}

// startChromium starts one Chromium with a fresh profile and returns the
// DevTools port it chose, or why it has none; the process is killed when
// the test ends either way.
func (b *browser) startChromium(width, height int) (string, error) {
	t := b.t
	profile := t.TempDir()
	cmd := exec.Command(chromiumPath,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
		"--user-data-dir="+profile, "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		fmt.Sprintf("--window-size=%d,%d", width, height), "about:blank")
	log := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the browser and its helper processes
		<-exited
		if t.Failed() {
			t.Logf("--- chromium output ---\n%s", log.String())
		}
	})

	// Chromium writes the port it chose into the profile.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			return "", fmt.Errorf("exited (%v) before serving DevTools:\n%s", waitErr, log.String())
		case <-tick.C:
		}
		if data, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort")); err == nil {
			if port, _, _ := strings.Cut(string(data), "\n"); port != "" {
				return port, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no DevTools port after 30s:\n%s", log.String())
		}
	}
}

func (b *browser) readLoop() {
	for {
		_, data, err := b.conn.Read(context.Background())
		if err != nil {
			b.mu.Lock()
			b.readErr = err
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var msg struct {
			ID int64 `json:"id"`
			cdpAnswer
		}
		if json.Unmarshal(data, &msg) != nil || msg.ID == 0 {
			continue // an event
		}
		b.mu.Lock()
		ch := b.pending[msg.ID]
		delete(b.pending, msg.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- msg.cdpAnswer
		}
	}
}

// call sends one DevTools command and decodes its result into out.
func (b *browser) call(method string, params, out any) {
	b.t.Helper()
	if err := b.try(method, params, out); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) try(method string, params, out any) error {
	b.mu.Lock()
	if b.readErr != nil {
		b.mu.Unlock()
		return fmt.Errorf("%s: devtools connection: %w", method, b.readErr)
	}
	b.next++
	id := b.next
	ch := make(chan cdpAnswer, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	msg, _ := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.conn.Write(ctx, websocket.MessageText, msg); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case ans, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: devtools connection closed", method)
		}
		if ans.Error != nil {
			return fmt.Errorf("%s: %s", method, ans.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(ans.Result, out)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: no answer within 30s", method)
	}
}

// eval runs a JavaScript expression in the page (promises awaited) and
// decodes its value into out.
func (b *browser) eval(expr string, out any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := b.try("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res); err != nil {
		return err
	}
	if res.Exception != nil {
		return fmt.Errorf("javascript: %s %s", res.Exception.Text, res.Exception.Exception.Description)
	}
	if out != nil && len(res.Result.Value) > 0 {
		return json.Unmarshal(res.Result.Value, out)
	}
	return nil
}

// waitTrue polls a JavaScript expression until it is true.
func (b *browser) waitTrue(limit time.Duration, what, expr string) {
	b.t.Helper()
	var lastErr error
	waitFor(b.t, limit, what, func() bool {
		var ok bool
		lastErr = b.eval(expr, &ok)
		return lastErr == nil && ok
	})
}

// poll is waitTrue without failing: it reports whether expr became true
// within limit.
func (b *browser) poll(limit time.Duration, expr string) bool {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(limit)
	for ; time.Now().Before(deadline); <-tick.C {
		var ok bool
		if b.eval(expr, &ok) == nil && ok {
			return true
		}
	}
	return false
}

// text returns the text content of the first element matching selector.
func (b *browser) text(selector string) string {
	b.t.Helper()
	var s string
	if err := b.eval(fmt.Sprintf("(document.querySelector(%q) || {}).textContent || ''", selector), &s); err != nil {
		b.t.Fatal(err)
	}
	return strings.TrimSpace(s)
}

// navigate loads url and waits until the document is complete.
func (b *browser) navigate(url string) {
	b.t.Helper()
	b.call("Page.navigate", map[string]any{"url": url}, nil)
	b.waitTrue(20*time.Second, "the page to load", "document.readyState === 'complete' && location.href !== 'about:blank'")
}

// click clicks the centre of the element matching selector with real
// mouse events, as a user would.
func (b *browser) click(selector string) {
	b.t.Helper()
	var box struct {
		X, Y     float64
		Disabled bool
	}
	expr := fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return null;
		el.scrollIntoView({block: "center"}); const r = el.getBoundingClientRect();
		return {X: r.left + r.width / 2, Y: r.top + r.height / 2, Disabled: !!el.disabled}; })()`, selector)
	if err := b.eval(expr, &box); err != nil {
		b.t.Fatal(err)
	}
	if box.X == 0 && box.Y == 0 {
		b.t.Fatalf("no element %s to click", selector)
	}
	if box.Disabled {
		b.t.Fatalf("%s is disabled", selector)
	}
	for _, typ := range []string{"mousePressed", "mouseReleased"} {
		b.call("Input.dispatchMouseEvent", map[string]any{"type": typ, "x": box.X, "y": box.Y, "button": "left", "clickCount": 1}, nil)
	}
}

// screenshot captures the whole page as PNG.
func (b *browser) screenshot(width int) []byte {
	b.t.Helper()
	var height int
	if err := b.eval("Math.ceil(document.documentElement.scrollHeight)", &height); err != nil {
		b.t.Fatal(err)
	}
	b.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}, nil)
	var shot struct {
		Data string `json:"data"`
	}
	b.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		b.t.Fatal(errors.New("screenshot is not a PNG"))
	}
	return png
}
