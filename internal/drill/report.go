package drill

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Report is a drill's evidence; report.json is this struct.
type Report struct {
	Version     int    `json:"version"` // 1
	Scenario    string `json:"scenario"`
	Description string `json:"description"`
	Topology    string `json:"topology"`
	Pattern     string `json:"pattern"`
	Replication string `json:"replication"`
	// Result is SUCCEEDED, FAILED or INTERRUPTED; Reasons say why it is not
	// SUCCEEDED. Notes are findings that do not fail the drill.
	Result  string   `json:"result"`
	Reasons []string `json:"reasons,omitempty"`
	Notes   []string `json:"notes,omitempty"`

	Started     time.Time `json:"started"`
	Ended       time.Time `json:"ended"`
	Primary     string    `json:"primary"` // before the fault
	Standby     string    `json:"standby"`
	EpochBefore int64     `json:"epoch_before"`

	Targets struct {
		RTOMs float64 `json:"rto_ms"`
		RPOMs float64 `json:"rpo_ms"`
	} `json:"targets"`
	Fault struct {
		Injected time.Time `json:"injected,omitzero"`
		Restored time.Time `json:"restored,omitzero"`
		Detail   []string  `json:"detail"`
		// Method is how the fault was made when a scenario has several
		// ways: partition says netns or linkproxy.
		Method string `json:"method,omitempty"`
	} `json:"fault"`
	Load struct {
		ChatRate     int `json:"chat_rate"`
		StreamRate   int `json:"stream_rate"`
		AgentWorkers int `json:"agent_workers"`
		// Model and Agent the load used.
		Model string `json:"model"`
		Agent string `json:"agent,omitempty"`
		// Totals over the whole drill.
		Total      Counts          `json:"total"`
		ByKind     map[Kind]Counts `json:"by_kind"`
		ErrorKinds map[string]int  `json:"error_kinds"`
		Acked      int             `json:"acked_turns"`
		Retries    int64           `json:"retries"`
		Abandoned  int64           `json:"abandoned_turns"`
	} `json:"load"`
	Measures Measures `json:"measures"`
	// Errors are the client errors of requests that ended after the
	// injection (those in flight at the injection included).
	Errors struct {
		Total  int             `json:"total"`
		ByKind map[string]int  `json:"by_kind"`
		ByType map[Kind]Counts `json:"by_request_kind"`
		// ByRegion counts the errors by the region that answered them.
		ByRegion map[string]int `json:"by_region"`
	} `json:"errors"`
	RPO struct {
		// AfterFailover checks the turns acknowledged until the standby
		// served steadily; Final every turn, at the end.
		AfterFailover *RPOCheck `json:"after_failover,omitempty"`
		Final         *RPOCheck `json:"final,omitempty"`
	} `json:"rpo"`
	Validation struct {
		EveryMs float64 `json:"every_ms"`
		Rounds  int     `json:"rounds"`
		Failed  int     `json:"failed"`
		// FailedChecks counts failures during the fault per check and error kind.
		FailedChecks map[string]map[string]int `json:"failed_checks,omitempty"`
		FirstFailure time.Time                 `json:"first_failure,omitzero"`
		LastFailure  time.Time                 `json:"last_failure,omitzero"`
		// BaselineFailed counts failed rounds before the fault.
		BaselineFailed int `json:"baseline_failed"`
	} `json:"validation"`
	// Phases are latency and errors before, during and after the fault.
	Phases   []Phase       `json:"phases"`
	Failover *Runbook      `json:"failover,omitempty"`
	Failback *Runbook      `json:"failback,omitempty"`
	Runs     []Runbook     `json:"runs,omitempty"`
	Drift    []DriftResult `json:"drift,omitempty"`
	Timeline []Event       `json:"timeline"`
	// Series is requests and errors per second by region and kind.
	Series []Second `json:"series"`

	LoadStarted  time.Time `json:"load_started,omitzero"`
	LoadStopped  time.Time `json:"load_stopped,omitzero"`
	AfterStarted time.Time `json:"after_started,omitzero"`

	observed Recovery
}

// Measures are the drill's headline numbers, in milliseconds from the
// injection; nil when it did not happen.
type Measures struct {
	// DetectMs is when the controller declared the region down or the edge
	// stopped trusting its origin, whichever came first.
	DetectMs   *float64 `json:"detect_ms"`
	DetectedBy string   `json:"detected_by,omitempty"`
	// The detection signals one by one.
	ControllerProbeFailingMs *float64 `json:"controller_probe_failing_ms"`
	ControllerDeclaredDownMs *float64 `json:"controller_declared_down_ms"`
	EdgeNoticedMs            *float64 `json:"edge_noticed_ms"`
	// RerouteMs is when the first request answered by another region
	// succeeded.
	RerouteMs     *float64 `json:"reroute_ms"`
	RerouteRegion string   `json:"reroute_region,omitempty"`
	// RTOMs is when every validation passed and kept passing until the
	// fault was restored: 0 when they never failed, nil when they did not
	// recover.
	RTOMs       *float64 `json:"rto_ms"`
	RTOMet      bool     `json:"rto_met"`
	Interrupted bool     `json:"interrupted"` // validations failed at some point
	Recovered   bool     `json:"recovered"`
	// ControllerRTOMs is the controller's own RTO (from its first failed
	// probe to its validation).
	ControllerRTOMs *float64 `json:"controller_rto_ms"`
	// FailoverMs and FailbackMs are the runbooks' durations.
	FailoverMs *float64 `json:"failover_ms"`
	FailbackMs *float64 `json:"failback_ms"`
	// LostItems is the number of acknowledged items not readable after the
	// drill (the RPO in items) and LostSpanMs the time they span.
	LostItems  int     `json:"lost_items"`
	LostSpanMs float64 `json:"lost_span_ms"`
}

// Phase is the load in one phase of the drill.
type Phase struct {
	Name string `json:"name"` // before, during, failback, after
	Window
}

func newReport(sys *System, sc *Scenario, o *Options, start time.Time) *Report {
	t := sys.Topology
	r := &Report{Version: 1, Scenario: sc.Name, Description: sc.Description, Topology: t.Name,
		Pattern: string(t.Pattern), Replication: t.Replication.Mode, Started: start}
	r.Targets.RTOMs = ms(o.Targets.RTO.D())
	r.Targets.RPOMs = ms(o.Targets.RPO.D())
	r.Load.ChatRate, r.Load.StreamRate, r.Load.AgentWorkers = o.ChatRate, o.StreamRate, o.AgentWorkers
	r.Load.Model, r.Load.Agent = o.Model, o.Agent
	r.Validation.EveryMs = ms(o.ValidateEvery)
	return r
}

func (r *Report) fail(format string, a ...any) {
	r.Reasons = append(r.Reasons, fmt.Sprintf(format, a...))
}

func msp(d time.Duration) *float64 { v := ms(d); return &v }

// compute derives the measures and the result from what was recorded.
func (r *Report) compute(events []Event, samples []Sample, acks []Ack, snap Snapshot, rounds []Round) {
	sort.SliceStable(events, func(i, j int) bool { return events[i].At.Before(events[j].At) })
	r.Timeline = events
	if r.Timeline == nil {
		r.Timeline = []Event{}
	}
	r.Load.Total, r.Load.ByKind, r.Load.ErrorKinds = snap.Total, snap.ByKind, snap.ErrorKinds
	r.Load.Acked, r.Load.Retries, r.Load.Abandoned = snap.Acked, snap.Retries, snap.Abandoned
	end := r.LoadStopped
	if end.IsZero() {
		end = time.Now()
	}
	if !r.LoadStarted.IsZero() {
		r.Series = Series(samples, r.LoadStarted, end)
	}
	r.Validation.Rounds = len(rounds)
	for _, rd := range rounds {
		if !rd.OK {
			r.Validation.Failed++
			if !r.Fault.Injected.IsZero() && rd.Start.Before(r.Fault.Injected) {
				r.Validation.BaselineFailed++
			}
		}
	}
	if r.Validation.BaselineFailed > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d validation rounds failed before the fault was injected", r.Validation.BaselineFailed))
	}
	r.Errors.ByKind, r.Errors.ByType, r.Errors.ByRegion = map[string]int{}, map[Kind]Counts{}, map[string]int{}

	inj := r.Fault.Injected
	if inj.IsZero() {
		r.phases(samples)
		r.judge(acks)
		return
	}
	since := func(t time.Time) *float64 { return msp(t.Sub(inj)) }
	for _, s := range samples {
		// Requests in flight at the injection ended after it: they count.
		if s.Start.Add(s.Latency).Before(inj) {
			continue
		}
		c := r.Errors.ByType[s.Kind]
		c.Requests++
		if !s.OK() {
			c.Errors++
			r.Errors.Total++
			r.Errors.ByKind[s.Err]++
			r.Errors.ByRegion[s.Region]++
		}
		r.Errors.ByType[s.Kind] = c
	}

	// Detection: the first signal about the primary after the injection.
	m := &r.Measures
	for _, e := range events {
		if e.At.Before(inj) || e.Region != r.Primary {
			continue
		}
		switch e.Kind {
		case EvProbeFailing:
			if m.ControllerProbeFailingMs == nil {
				m.ControllerProbeFailingMs = since(e.At)
			}
		case EvDeclaredDown:
			if m.ControllerDeclaredDownMs == nil {
				m.ControllerDeclaredDownMs = since(e.At)
			}
		case EvOriginUnhealthy, EvOriginEjected:
			if m.EdgeNoticedMs == nil {
				m.EdgeNoticedMs = since(e.At)
				if m.DetectMs == nil || *m.EdgeNoticedMs < *m.DetectMs {
					m.DetectMs, m.DetectedBy = m.EdgeNoticedMs, e.Message
				}
			}
		}
		if e.Kind == EvDeclaredDown && (m.DetectMs == nil || *m.ControllerDeclaredDownMs < *m.DetectMs) {
			m.DetectMs, m.DetectedBy = m.ControllerDeclaredDownMs, e.Message
		}
	}
	if f := r.Failover; f != nil {
		if !f.FaultAt.IsZero() && !f.FaultAt.Before(inj) && (m.ControllerProbeFailingMs == nil || f.FaultAt.Sub(inj) < time.Duration(*m.ControllerProbeFailingMs*float64(time.Millisecond))) {
			m.ControllerProbeFailingMs = since(f.FaultAt) // the controller's own record is exact
		}
		// The run starts the moment the controller declares the region
		// down: exact, where the watcher's polls are not.
		if !f.Created.Before(inj) && (m.ControllerDeclaredDownMs == nil || f.Created.Sub(inj) < time.Duration(*m.ControllerDeclaredDownMs*float64(time.Millisecond))) && !f.Planned {
			m.ControllerDeclaredDownMs = since(f.Created)
			if m.DetectMs == nil || *m.ControllerDeclaredDownMs < *m.DetectMs {
				m.DetectMs, m.DetectedBy = m.ControllerDeclaredDownMs, "controller: "+r.Primary+" declared down (runbook "+f.ID+" started)"
			}
		}
		if v, ok := f.Data["rto_ms"].(float64); ok {
			m.ControllerRTOMs = &v
		}
		if !f.Ended.IsZero() {
			m.FailoverMs = msp(f.Ended.Sub(f.Created))
		}
	}
	if f := r.Failback; f != nil && !f.Ended.IsZero() {
		m.FailbackMs = msp(f.Ended.Sub(f.Created))
	}

	// Reroute: the first success from another region.
	for _, s := range samples {
		if s.Start.Before(inj) || !s.OK() || s.Region == r.Primary || s.Region == NoRegion {
			continue
		}
		end := s.Start.Add(s.Latency)
		if m.RerouteMs == nil || end.Sub(inj) < time.Duration(*m.RerouteMs*float64(time.Millisecond)) {
			m.RerouteMs, m.RerouteRegion = since(end), s.Region
		}
	}
	if m.RerouteMs != nil {
		r.Timeline = insertEvent(r.Timeline, Event{At: inj.Add(time.Duration(*m.RerouteMs * float64(time.Millisecond))), Source: "load", Kind: EvReroute,
			Region: m.RerouteRegion, Message: "first request answered by " + m.RerouteRegion + " after the fault"})
	}

	// RTO from the validation rounds.
	obs := r.observed
	if r.Fault.Restored.IsZero() {
		obs = recovery(rounds, inj, end)
	}
	m.Interrupted, m.Recovered = obs.Interrupted, obs.Recovered
	r.Validation.FailedChecks, r.Validation.FirstFailure, r.Validation.LastFailure = obs.FailedChecks, obs.FirstFailure, obs.LastFailure
	switch {
	case obs.Recovered && !obs.Interrupted:
		m.RTOMs = msp(0)
	case obs.Recovered:
		m.RTOMs = since(obs.At)
		r.Timeline = insertEvent(r.Timeline, Event{At: obs.At, Source: "validation", Kind: EvRecovered,
			Message: "every validation passes (inference, agent turn, write) and keeps passing"})
	}
	m.RTOMet = m.RTOMs != nil && *m.RTOMs <= r.Targets.RTOMs
	r.phases(samples)
	r.judge(acks)
}

func insertEvent(events []Event, e Event) []Event {
	i := sort.Search(len(events), func(i int) bool { return events[i].At.After(e.At) })
	return slices.Insert(events, i, e)
}

func (r *Report) phases(samples []Sample) {
	end := r.LoadStopped
	if end.IsZero() {
		end = time.Now()
	}
	type span struct {
		name     string
		from, to time.Time
	}
	var spans []span
	if r.Fault.Injected.IsZero() {
		spans = []span{{"before", r.LoadStarted, end}}
	} else {
		restored := r.Fault.Restored
		if restored.IsZero() {
			restored = end
		}
		spans = append(spans, span{"before", r.LoadStarted, r.Fault.Injected}, span{"during", r.Fault.Injected, restored})
		after := r.AfterStarted
		if after.IsZero() {
			after = end
		}
		if after.Sub(restored) > 0 && r.Failback != nil {
			spans = append(spans, span{"failback", restored, after})
		} else {
			after = restored
		}
		spans = append(spans, span{"after", after, end})
	}
	for _, s := range spans {
		if s.from.IsZero() || !s.to.After(s.from) {
			continue
		}
		r.Phases = append(r.Phases, Phase{Name: s.name, Window: Summarize(samples, s.from, s.to)})
	}
}

// judge sets Result and Reasons from the measures.
func (r *Report) judge(acks []Ack) {
	m := &r.Measures
	if !r.Fault.Injected.IsZero() {
		switch {
		case m.RTOMs == nil:
			r.fail("not recovered: validations were still failing when the fault was restored (%s)", failedChecks(r.Validation.FailedChecks))
		case !m.RTOMet:
			r.fail("RTO target missed: %s measured, target %s", fmtMs(*m.RTOMs), fmtMs(r.Targets.RTOMs))
		}
	}
	for _, c := range []*RPOCheck{r.RPO.AfterFailover, r.RPO.Final} {
		if c == nil {
			continue
		}
		m.LostItems = max(m.LostItems, c.Lost)
		m.LostSpanMs = max(m.LostSpanMs, c.SpanMs)
	}
	if m.LostItems > 0 {
		r.fail("%d acknowledged items lost (RPO target %s); they span %s", m.LostItems, fmtMs(r.Targets.RPOMs), fmtMs(m.LostSpanMs))
	}
	if m.LostItems > 0 && m.LostSpanMs > r.Targets.RPOMs {
		r.fail("RPO target missed: lost writes span %s, target %s", fmtMs(m.LostSpanMs), fmtMs(r.Targets.RPOMs))
	}
	for _, c := range []*RPOCheck{r.RPO.AfterFailover, r.RPO.Final} {
		if c != nil && c.Unverified > 0 {
			r.fail("%d acknowledged items could not be read back: %s", c.Unverified, strings.Join(c.Errors, "; "))
		}
	}
	if r.Load.Acked == 0 && !r.LoadStarted.IsZero() {
		r.fail("%v", errNoAcks)
	}
	for _, d := range r.Drift {
		switch {
		case d.Verdict == "UNKNOWN":
			r.Notes = append(r.Notes, fmt.Sprintf("drift %s the fault: UNKNOWN (%s)", d.Phase, firstLine(d.Output)))
		case d.Phase == "during" && (d.Verdict != "NOT_READY" || !d.VersionDrift):
			r.fail("drift reported %s %s (version drift found: %v) while its model servers report another model version", d.Region, d.Verdict, d.VersionDrift)
		case d.Phase == "after" && d.VersionDrift:
			r.fail("drift still finds a version drift in %s after the restore", d.Region)
		case d.Phase == "after" && d.Verdict != "READY":
			r.Notes = append(r.Notes, fmt.Sprintf("drift after the restore: %s is %s for other reasons: %s", d.Region, d.Verdict, firstLine(d.Output)))
		}
	}
	if r.Failback != nil && r.Failback.Status == "completed" && r.Failback.To != r.Primary {
		r.fail("failback went to %s, not the original primary %s", r.Failback.To, r.Primary)
	}
	r.Result = Succeeded
	if len(r.Reasons) > 0 {
		r.Result = Failed
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func failedChecks(fc map[string]map[string]int) string {
	var parts []string
	for _, c := range Checks {
		for kind, n := range fc[c] {
			parts = append(parts, fmt.Sprintf("%s %s×%d", c, kind, n))
		}
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "no rounds"
	}
	return strings.Join(parts, ", ")
}

func fmtMs(v float64) string {
	d := time.Duration(v * float64(time.Millisecond))
	switch {
	case d == 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(10 * time.Millisecond).String()
	}
}

func fmtMsp(v *float64) string {
	if v == nil {
		return "—"
	}
	return fmtMs(*v)
}

// Failed reports whether the drill should exit non-zero.
func (r *Report) Failed() bool { return r.Result != Succeeded }

// Summary is a few lines for the terminal.
func (r *Report) Summary() string {
	var b strings.Builder
	m := r.Measures
	fmt.Fprintf(&b, "drill %s: %s\n", r.Scenario, r.Result)
	for _, why := range r.Reasons {
		fmt.Fprintf(&b, "  - %s\n", why)
	}
	fmt.Fprintf(&b, "  detect %s, reroute %s, RTO %s (target %s), controller RTO %s\n",
		fmtMsp(m.DetectMs), fmtMsp(m.RerouteMs), fmtMsp(m.RTOMs), fmtMs(r.Targets.RTOMs), fmtMsp(m.ControllerRTOMs))
	items := 0
	if r.RPO.Final != nil {
		items = r.RPO.Final.Items
	}
	fmt.Fprintf(&b, "  %d acknowledged turns (%d items), %d lost; %d client errors after the fault %v",
		r.Load.Acked, items, m.LostItems, r.Errors.Total, r.Errors.ByKind)
	return b.String()
}

// WriteFiles writes report.json, report.md and report.html into dir.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.Markdown()), 0o644); err != nil {
		return err
	}
	html, err := r.HTML()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.html"), html, 0o644)
}
