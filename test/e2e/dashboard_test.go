package e2e

import (
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "write the dashboard screenshot to docs/img/dashboard.png")

// TestDashboardTakeRegionDown drives the dashboard of `understudy demo` in
// headless Chromium: it signs in with the one-time link the demo printed,
// clicks "Take region down" on the primary, and waits until the page shows
// the standby as the new primary, the runbook completed and its RTO. The
// screenshot is saved in $ARTIFACTS (or the test's temporary directory)
// and, with -update, as docs/img/dashboard.png.
func TestDashboardTakeRegionDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole demo topology and a browser")
	}
	needChromium(t)
	d := startDemo(t)
	dash := d.ready["dashboard"]
	const width = 1280
	b := launchBrowser(t, width, 900)
	b.navigate(dash)

	region := func(name, sel string) string { return `.region[data-region="` + name + `"] ` + sel }
	b.waitTrue(20*time.Second, "the dashboard to sign in and show eastus2 as primary",
		`!document.getElementById("main").hidden && document.querySelector('`+region("eastus2", ".role")+`')?.textContent === "primary"`)
	var hash string
	var stored bool
	b.eval("location.hash", &hash)
	b.eval(`!!sessionStorage.getItem("understudy.admin-token")`, &stored)
	if hash != "" || !stored {
		t.Fatalf("after sign-in: location.hash %q (want it stripped), token stored %v", hash, stored)
	}
	// The link was one-time: spent by the page, it no longer signs anyone in.
	base, code, _ := strings.Cut(dash, "/#code=")
	resp, err := http.Post(base+"/v1/dashboard/session", "application/json", strings.NewReader(`{"code":"`+code+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("second use of the dashboard link: %s, want 401", resp.Status)
	}

	b.waitTrue(20*time.Second, "centralus as standby and the background load counted on eastus2",
		`document.querySelector('`+region("centralus", ".role")+`')?.textContent === "standby" &&
		 parseFloat(document.querySelector('`+region("eastus2", ".rps")+`')?.textContent) > 0`)

	if *update {
		// For the picture: some traffic history on the chart first.
		b.waitTrue(60*time.Second, "20 s of traffic history", "state.traffic.series.length >= 20")
	}
	start := time.Now()
	b.click(region("eastus2", `button[data-action="down"]`))
	b.waitTrue(30*time.Second, "eastus2 to be shown down", `document.querySelector('`+region("eastus2", ".role")+`')?.textContent === "down"`)
	t.Logf("%s: eastus2 shown down", time.Since(start).Round(time.Millisecond))
	b.waitTrue(60*time.Second, "centralus promoted and the runbook's RTO shown",
		`document.querySelector('`+region("centralus", ".role")+`')?.textContent === "primary" &&
		 document.getElementById("run-status").textContent === "completed" &&
		 document.getElementById("rto").dataset.ms !== ""`)
	rto, note := b.text("#rto"), b.text("#rto-note")
	if !strings.HasSuffix(rto, " s") && !strings.HasSuffix(rto, " ms") || !strings.Contains(note, "target") {
		t.Fatalf("RTO shown as %q (%q)", rto, note)
	}
	if got := b.text("#sum-primary"); got != "primary centralus" {
		t.Fatalf("header says %q, want primary centralus", got)
	}
	if got := b.text("#rpo"); got != "0 events" {
		t.Errorf("RPO shown as %q, want 0 events (sync replication)", got)
	}
	t.Logf("%s: dashboard shows failover eastus2 → centralus, RTO %s (%s)", time.Since(start).Round(time.Millisecond), rto, note)
	// Traffic follows the new primary on the page too.
	b.waitTrue(20*time.Second, "requests counted on centralus, served through the edge",
		`parseFloat(document.querySelector('`+region("centralus", ".rps")+`')?.textContent) > 0 &&
		 document.querySelector('`+region("centralus", ".edge")+`')?.textContent.startsWith("serving")`)
	// For a calm picture, give the error rate of the switch-over (5 s
	// window) a moment to fall back to zero; not an assertion.
	settled := b.poll(10*time.Second, `document.querySelector('`+region("centralus", ".err")+`')?.textContent === "0.0 errors/s"`)
	t.Logf("%s: traffic on centralus (error rate settled: %v)", time.Since(start).Round(time.Millisecond), settled)

	b.poll(10*time.Second, `document.getElementById("toast").hidden`) // the action's notice fades
	png := b.screenshot(width)
	dir := os.Getenv("ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
	if *update {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "img", "dashboard.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d.interrupt(t)
}
