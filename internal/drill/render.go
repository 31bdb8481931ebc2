package drill

import (
	"bytes"
	"fmt"
	"html"
	"html/template"
	"maps"
	"slices"
	"strings"
	"time"
)

// offset formats t relative to the injection ("+1.20s", "-3.00s").
func (r *Report) offset(t time.Time) string {
	ref := r.Fault.Injected
	if ref.IsZero() {
		ref = r.Started
	}
	return fmt.Sprintf("%+.2fs", t.Sub(ref).Seconds())
}

func pct(p Percentiles) string {
	if p.Count == 0 {
		return "—"
	}
	return fmt.Sprintf("%s / %s", fmtMs(p.P50), fmtMs(p.P99))
}

func kinds(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// row is one line of the headline table.
type row struct{ Measure, Value, Target string }

func (r *Report) headline() []row {
	m := r.Measures
	lost := "not checked"
	if c := r.RPO.Final; c != nil {
		lost = fmt.Sprintf("%d of %d items (%d turns), span %s", m.LostItems, c.Items, c.Acked, fmtMs(m.LostSpanMs))
	}
	detect := fmtMsp(m.DetectMs)
	if m.DetectedBy != "" {
		detect += " — " + m.DetectedBy
	}
	reroute := fmtMsp(m.RerouteMs)
	if m.RerouteRegion != "" {
		reroute += " — first success from " + m.RerouteRegion
	}
	rto := fmtMsp(m.RTOMs)
	switch {
	case m.RTOMs != nil && !m.Interrupted:
		rto += " — validations never failed"
	case m.RTOMs == nil && !r.Fault.Injected.IsZero():
		rto += " — not recovered"
	}
	rows := []row{
		{"Result", r.Result, ""},
		{"Time to detect", detect, ""},
		{"Time to reroute", reroute, ""},
		{"RTO (client validations)", rto, fmtMs(r.Targets.RTOMs)},
		{"Acknowledged items lost (RPO)", lost, "RPO " + fmtMs(r.Targets.RPOMs)},
		{"Client errors after the fault", fmt.Sprintf("%d of %d requests (%s)", r.Errors.Total, sumRequests(r.Errors.ByType), kinds(r.Errors.ByKind)), ""},
	}
	if m.ControllerRTOMs != nil {
		rows = append(rows, row{"Controller RTO (first failed probe → validated)", fmtMsp(m.ControllerRTOMs), ""})
	}
	if m.FailoverMs != nil {
		rows = append(rows, row{"Failover runbook", fmtMsp(m.FailoverMs), ""})
	}
	if m.FailbackMs != nil {
		rows = append(rows, row{"Failback runbook", fmtMsp(m.FailbackMs), ""})
	}
	for _, d := range r.Drift {
		rows = append(rows, row{"Drift of " + d.Region + " (" + d.Phase + " the fault)", d.Verdict, ""})
	}
	return rows
}

func sumRequests(m map[Kind]Counts) int {
	n := 0
	for _, c := range m {
		n += c.Requests
	}
	return n
}

func (r *Report) phaseRows() [][]string {
	var out [][]string
	for _, p := range r.Phases {
		out = append(out, []string{p.Name, r.offset(p.From), fmt.Sprintf("%.1fs", p.To.Sub(p.From).Seconds()),
			fmt.Sprint(p.Requests), fmt.Sprint(p.Errors),
			pct(p.Latency[KindChat]), pct(p.Latency[KindStream]), pct(p.TTFT), pct(p.Latency[KindAgent])})
	}
	return out
}

var phaseHeader = []string{"Phase", "From", "Length", "Requests", "Errors", "Chat p50 / p99", "Stream p50 / p99", "TTFT p50 / p99", "Agent turn p50 / p99"}

func (r *Report) runs() []*Runbook {
	var out []*Runbook
	for _, run := range []*Runbook{r.Failover, r.Failback} {
		if run != nil {
			out = append(out, run)
		}
	}
	return out
}

func (r *Report) stepRows(run *Runbook) [][]string {
	var out [][]string
	for _, s := range run.Steps {
		start, length := "—", "—"
		if !s.Started.IsZero() {
			start = r.offset(s.Started)
			if !s.Ended.IsZero() {
				length = fmtMs(ms(s.Ended.Sub(s.Started)))
			}
		}
		out = append(out, []string{s.Name, s.Status, start, length, fmt.Sprint(s.Attempts), s.Error})
	}
	return out
}

var stepHeader = []string{"Step", "Status", "Started", "Took", "Attempts", "Error"}

func mdTable(b *bytes.Buffer, header []string, rows [][]string) {
	esc := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		for i := range r {
			r[i] = esc(r[i])
		}
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	b.WriteString("\n")
}

func (r *Report) rpoLine(name string, c *RPOCheck) string {
	if c == nil {
		return ""
	}
	s := fmt.Sprintf("- %s (%s): %d acknowledged turns, %d items in %d conversations; **%d lost**, %d unverified",
		name, r.offset(c.At), c.Acked, c.Items, c.Conversations, c.Lost, c.Unverified)
	if c.Lost > 0 {
		s += fmt.Sprintf("; lost turns acknowledged from %s to %s (span %s), e.g. %s", r.offset(c.FirstLost), r.offset(c.LastLost), fmtMs(c.SpanMs), strings.Join(c.Examples, ", "))
	}
	return s + "\n"
}

// Markdown renders the report as Markdown.
func (r *Report) Markdown() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Drill report: %s — %s\n\n", r.Scenario, r.Result)
	fmt.Fprintf(&b, "%s\n\n", r.Description)
	fmt.Fprintf(&b, "Topology `%s` (%s, %s replication); primary **%s**, standby **%s** (epoch %d). Started %s, ran %.1fs. "+
		"Load: %d chat/s, %d streamed chat/s, %d agent conversations (model `%s`, agent `%s`), all through the edge with openai-go.\n\n",
		r.Topology, r.Pattern, r.Replication, r.Primary, r.Standby, r.EpochBefore, r.Started.UTC().Format(time.RFC3339),
		r.Ended.Sub(r.Started).Seconds(), r.Load.ChatRate, r.Load.StreamRate, r.Load.AgentWorkers, r.Load.Model, r.Load.Agent)
	if len(r.Fault.Detail) > 0 {
		method := ""
		if r.Fault.Method != "" {
			method = " (method: " + r.Fault.Method + ")"
		}
		fmt.Fprintf(&b, "Fault%s: %s. Times below are relative to the injection.\n\n", method, strings.Join(r.Fault.Detail, "; "))
	}
	var rows [][]string
	for _, h := range r.headline() {
		rows = append(rows, []string{h.Measure, h.Value, h.Target})
	}
	mdTable(&b, []string{"Measure", "Value", "Target"}, rows)
	if len(r.Reasons) > 0 {
		b.WriteString("## Why it failed\n\n")
		for _, s := range r.Reasons {
			fmt.Fprintf(&b, "- %s\n", s)
		}
		b.WriteString("\n")
	}
	if len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, s := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", s)
		}
		b.WriteString("\n")
	}
	b.WriteString("## Latency and errors by phase\n\nSuccessful requests only; TTFT is the streamed requests' time to first token.\n\n")
	mdTable(&b, phaseHeader, r.phaseRows())
	b.WriteString("## Client errors after the fault\n\n")
	rows = nil
	for _, k := range Kinds {
		c := r.Errors.ByType[k]
		rows = append(rows, []string{string(k), fmt.Sprint(c.Requests), fmt.Sprint(c.Errors)})
	}
	mdTable(&b, []string{"Request kind", "Requests", "Errors"}, rows)
	fmt.Fprintf(&b, "By error kind: %s. By answering region: %s. Agent turns retried under their Idempotency-Key: %d; abandoned: %d.\n\n",
		kinds(r.Errors.ByKind), kinds(r.Errors.ByRegion), r.Load.Retries, r.Load.Abandoned)
	b.WriteString("## Acknowledged writes (RPO)\n\n")
	b.WriteString(r.rpoLine("After the failover", r.RPO.AfterFailover))
	b.WriteString(r.rpoLine("At the end", r.RPO.Final))
	b.WriteString("\n## Validations (RTO)\n\n")
	fmt.Fprintf(&b, "Every %s: one inference, one agent turn and one conversation write through the edge. %d rounds, %d failed",
		fmtMs(r.Validation.EveryMs), r.Validation.Rounds, r.Validation.Failed)
	if !r.Validation.FirstFailure.IsZero() {
		fmt.Fprintf(&b, " (during the fault from %s to %s: %s)", r.offset(r.Validation.FirstFailure), r.offset(r.Validation.LastFailure), failedChecks(r.Validation.FailedChecks))
	}
	b.WriteString(".\n\n")
	for _, run := range r.runs() {
		fmt.Fprintf(&b, "## Runbook: %s %s → %s (%s)\n\n", run.Kind, run.From, run.To, run.Status)
		fmt.Fprintf(&b, "Run `%s`, %s. %s\n\n", run.ID, map[bool]string{true: "planned", false: "unplanned"}[run.Planned], run.Reason)
		mdTable(&b, stepHeader, r.stepRows(run))
	}
	for _, d := range r.Drift {
		fmt.Fprintf(&b, "## Drift %s the fault: %s is %s\n\n```\n%s\n```\n\n", d.Phase, d.Region, d.Verdict, strings.TrimSpace(d.Output))
	}
	b.WriteString("## Timeline\n\n")
	rows = nil
	for _, e := range r.Timeline {
		rows = append(rows, []string{r.offset(e.At), e.Source, e.Message})
	}
	mdTable(&b, []string{"Time", "Source", "Event"}, rows)
	b.WriteString("How to read this report: docs/DRILLS.md.\n")
	return b.String()
}

// HTML renders the report as one self-contained page: inline CSS and an
// inline SVG timeline, no external assets.
func (r *Report) HTML() ([]byte, error) {
	var b bytes.Buffer
	var rows [][]string
	for _, k := range Kinds {
		c := r.Errors.ByType[k]
		rows = append(rows, []string{string(k), fmt.Sprint(c.Requests), fmt.Sprint(c.Errors)})
	}
	type runView struct {
		Title string
		Rows  [][]string
	}
	var runs []runView
	for _, run := range r.runs() {
		runs = append(runs, runView{fmt.Sprintf("%s %s → %s (%s), run %s", run.Kind, run.From, run.To, run.Status, run.ID), r.stepRows(run)})
	}
	var timeline [][]string
	for _, e := range r.Timeline {
		timeline = append(timeline, []string{r.offset(e.At), e.Source, e.Message})
	}
	var rpo []string
	for _, l := range []string{r.rpoLine("After the failover", r.RPO.AfterFailover), r.rpoLine("At the end", r.RPO.Final)} {
		if l != "" {
			rpo = append(rpo, strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(l), "- "), "**", ""))
		}
	}
	err := htmlTmpl.Execute(&b, map[string]any{
		"R": r, "Headline": r.headline(), "Chart": template.HTML(r.chart()),
		"PhaseHeader": phaseHeader, "Phases": r.phaseRows(), "Errors": rows, "Runs": runs, "StepHeader": stepHeader,
		"Timeline": timeline, "RPO": rpo, "ErrorKinds": kinds(r.Errors.ByKind), "ErrorRegions": kinds(r.Errors.ByRegion),
		"Seconds": fmt.Sprintf("%.1f", r.Ended.Sub(r.Started).Seconds()), "Started": r.Started.UTC().Format(time.RFC3339),
		"Pass": r.Result == Succeeded,
	})
	return b.Bytes(), err
}

var htmlTmpl = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Drill {{.R.Scenario}}: {{.R.Result}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1040px;padding:0 1rem;color:#1d2330}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #dde;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eef;vertical-align:top}
th{background:#f5f6fa;font-weight:600}.badge{display:inline-block;padding:.1rem .6rem;border-radius:1rem;color:#fff;font-weight:700}
.ok{background:#1a7f37}.bad{background:#c62828}.muted{color:#667}code,pre{font-family:ui-monospace,monospace;font-size:12px}
pre{background:#f5f6fa;padding:.6rem;overflow:auto}svg text{font:11px system-ui,sans-serif;fill:#334}
</style></head><body>
<h1>Drill {{.R.Scenario}} <span class="badge {{if .Pass}}ok{{else}}bad{{end}}">{{.R.Result}}</span></h1>
<p class="muted">{{.R.Description}}</p>
<p>Topology <code>{{.R.Topology}}</code> ({{.R.Pattern}}, {{.R.Replication}} replication); primary <b>{{.R.Primary}}</b>, standby <b>{{.R.Standby}}</b>. Started {{.Started}}, ran {{.Seconds}}s.
Load through the edge with openai-go: {{.R.Load.ChatRate}} chat/s, {{.R.Load.StreamRate}} streamed chat/s, {{.R.Load.AgentWorkers}} agent conversations.
{{if .R.Fault.Detail}}Fault{{if .R.Fault.Method}} (method: {{.R.Fault.Method}}){{end}}: {{range $i, $d := .R.Fault.Detail}}{{if $i}}; {{end}}{{$d}}{{end}}. Times are relative to the injection.{{end}}</p>
{{if .R.Reasons}}<h2>Why it failed</h2><ul>{{range .R.Reasons}}<li>{{.}}</li>{{end}}</ul>{{end}}
<table><tr><th>Measure</th><th>Value</th><th>Target</th></tr>
{{range .Headline}}<tr><td>{{.Measure}}</td><td>{{.Value}}</td><td>{{.Target}}</td></tr>{{end}}</table>
{{if .R.Notes}}<h2>Notes</h2><ul>{{range .R.Notes}}<li>{{.}}</li>{{end}}</ul>{{end}}
<h2>Timeline</h2>
{{.Chart}}
<h2>Latency and errors by phase</h2>
<table><tr>{{range .PhaseHeader}}<th>{{.}}</th>{{end}}</tr>{{range .Phases}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>
<h2>Client errors after the fault</h2>
<table><tr><th>Request kind</th><th>Requests</th><th>Errors</th></tr>{{range .Errors}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>
<p>By error kind: {{.ErrorKinds}}. By answering region: {{.ErrorRegions}}. Agent turns retried under their Idempotency-Key: {{.R.Load.Retries}}; abandoned: {{.R.Load.Abandoned}}.</p>
<h2>Acknowledged writes (RPO)</h2><ul>{{range .RPO}}<li>{{.}}</li>{{end}}</ul>
{{range .Runs}}<h2>Runbook: {{.Title}}</h2>
<table><tr>{{range $.StepHeader}}<th>{{.}}</th>{{end}}</tr>{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>{{end}}
{{range .R.Drift}}<h2>Drift {{.Phase}} the fault: {{.Region}} is {{.Verdict}}</h2><pre>{{.Output}}</pre>{{end}}
<h2>Events</h2>
<table><tr><th>Time</th><th>Source</th><th>Event</th></tr>{{range .Timeline}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>
<p class="muted">How to read this report: docs/DRILLS.md in the Understudy repository. The raw data is in report.json beside this file.</p>
</body></html>
`))

var regionColors = []string{"#2f6fdf", "#13a38b", "#8e5bd8", "#d48a00"}

// chart draws requests per second by region as stacked bars (errors in
// red on top), the fault, the detection, reroute and recovery marks, and
// one lane per runbook with its steps.
func (r *Report) chart() string {
	if len(r.Series) == 0 {
		return `<p class="muted">No load was recorded.</p>`
	}
	const (
		W, left, right, top = 1000, 48, 12, 16
		plotH               = 220
		laneH               = 26
	)
	runs := r.runs()
	H := top + plotH + 40 + len(runs)*laneH + 30
	t0 := r.Series[0].At
	t1 := r.Series[len(r.Series)-1].At.Add(time.Second)
	span := t1.Sub(t0).Seconds()
	x := func(t time.Time) float64 { return left + (t.Sub(t0).Seconds()/span)*float64(W-left-right) }
	var regions []string
	seen := map[string]bool{}
	for _, s := range r.Series {
		for reg := range s.Requests {
			if !seen[reg] && reg != NoRegion {
				seen[reg] = true
				regions = append(regions, reg)
			}
		}
	}
	slices.Sort(regions)
	ymax := 1
	for _, s := range r.Series {
		n := 0
		for _, v := range s.Requests {
			n += v
		}
		ymax = max(ymax, n)
	}
	y := func(v float64) float64 { return top + plotH - v/float64(ymax)*plotH }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" role="img" aria-label="requests and errors per second by region">`, W, H)
	// Axes and grid.
	for i := 0; i <= 4; i++ {
		v := float64(ymax) * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e3e6ef"/><text x="%d" y="%.1f" text-anchor="end">%.0f</text>`,
			left, W-right, y(v), y(v), left-6, y(v)+4, v)
	}
	fmt.Fprintf(&b, `<text x="4" y="%d" transform="rotate(-90 10 %d)">req/s</text>`, top+plotH/2, top+plotH/2)
	bw := float64(W-left-right) / span
	for _, s := range r.Series {
		base := 0.0
		ok := func(reg string) float64 { return float64(s.Requests[reg] - s.Errors[reg]) }
		for i, reg := range regions {
			v := ok(reg)
			if v <= 0 {
				continue
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %.0f ok at %s</title></rect>`,
				x(s.At)+0.5, y(base+v), max(bw-1, 1), y(base)-y(base+v), regionColors[i%len(regionColors)], html.EscapeString(reg), v, r.offset(s.At))
			base += v
		}
		errs := 0
		for _, v := range s.Errors {
			errs += v
		}
		if errs > 0 {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#d32f2f"><title>%d errors at %s</title></rect>`,
				x(s.At)+0.5, y(base+float64(errs)), max(bw-1, 1), y(base)-y(base+float64(errs)), errs, r.offset(s.At))
		}
	}
	// X axis: seconds relative to the injection.
	ref := r.Fault.Injected
	if ref.IsZero() {
		ref = t0
	}
	step := max(1, int(span/12))
	for sec := int(t0.Sub(ref).Seconds()) - 1; float64(sec) <= t1.Sub(ref).Seconds(); sec++ {
		at := ref.Add(time.Duration(sec) * time.Second)
		if at.Before(t0) || sec%step != 0 {
			continue
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#99a"/><text x="%.1f" y="%d" text-anchor="middle">%+ds</text>`,
			x(at), x(at), top+plotH, top+plotH+4, x(at), top+plotH+16, sec)
	}
	// Marks.
	mark := func(t time.Time, color, label string, row int) {
		if t.IsZero() || t.Before(t0) || t.After(t1) {
			return
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s" stroke-width="1.5" stroke-dasharray="4 3"/><text x="%.1f" y="%d" style="fill:%s;paint-order:stroke;stroke:#fff;stroke-width:3px">%s</text>`,
			x(t), x(t), top, top+plotH, color, x(t)+3, top+10+row*12, color, html.EscapeString(label))
	}
	mark(r.Fault.Injected, "#c62828", "fault", 0)
	mark(r.Fault.Restored, "#1a7f37", "restored", 0)
	m := r.Measures
	at := func(v *float64) time.Time {
		if v == nil {
			return time.Time{}
		}
		return r.Fault.Injected.Add(time.Duration(*v * float64(time.Millisecond)))
	}
	mark(at(m.DetectMs), "#ef6c00", "detected", 1)
	mark(at(m.RerouteMs), "#6a1b9a", "rerouted", 2)
	if m.Interrupted {
		mark(at(m.RTOMs), "#00695c", "RTO", 3)
	}
	// Runbook lanes.
	stepColor := map[string]string{"done": "#4caf50", "completed": "#4caf50", "running": "#ffb300", "failed": "#e53935", "skipped": "#b0bec5", "pending": "#eceff1"}
	ly := top + plotH + 30
	for i, run := range runs {
		yy := ly + i*laneH
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`, left-6, yy+14, html.EscapeString(run.Kind))
		for _, s := range run.Steps {
			if s.Started.IsZero() {
				continue
			}
			end := s.Ended
			if end.IsZero() {
				end = s.Started
			}
			x0, x1 := x(s.Started), x(end)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="18" fill="%s" stroke="#fff"><title>%s %s, %s from %s</title></rect>`,
				x0, yy, max(x1-x0, 2), stepColor[s.Status], html.EscapeString(s.Name), s.Status, fmtMs(ms(end.Sub(s.Started))), r.offset(s.Started))
			if x1-x0 > 40 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`, x0+3, yy+13, html.EscapeString(s.Name))
			}
		}
	}
	// Legend.
	lx, lyy := float64(left), H-10
	for i, reg := range regions {
		fmt.Fprintf(&b, `<rect x="%.0f" y="%d" width="10" height="10" fill="%s"/><text x="%.0f" y="%d">%s ok</text>`, lx, lyy-9, regionColors[i%len(regionColors)], lx+14, lyy, html.EscapeString(reg))
		lx += 110
	}
	fmt.Fprintf(&b, `<rect x="%.0f" y="%d" width="10" height="10" fill="#d32f2f"/><text x="%.0f" y="%d">errors</text>`, lx, lyy-9, lx+14, lyy)
	lx += 80
	for _, st := range []string{"done", "failed", "skipped"} {
		fmt.Fprintf(&b, `<rect x="%.0f" y="%d" width="10" height="10" fill="%s"/><text x="%.0f" y="%d">step %s</text>`, lx, lyy-9, stepColor[st], lx+14, lyy, st)
		lx += 110
	}
	b.WriteString(`</svg>`)
	return b.String()
}
