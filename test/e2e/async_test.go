package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/conversations"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/understudy/understudy/internal/lease"
	"github.com/understudy/understudy/internal/linkproxy"
	"github.com/understudy/understudy/internal/modelsim"
	"github.com/understudy/understudy/internal/region"
	"github.com/understudy/understudy/internal/topology"
)

// asyncTopology is failoverTopology with async replication (an RPO
// target of 5s) and link proxies on every link, so a test can slow the
// replication link down.
func asyncTopology(mode string) string {
	topo := fmt.Sprintf(failoverTopology, e2eKey, e2eAdmin, e2eModel)
	topo = strings.Replace(topo, "mode: sync,", "mode: "+mode+",", 1)
	if mode == "async" {
		topo = strings.Replace(topo, "rpo: 0s", "rpo: 5s", 1)
	}
	return topo + "links: {enabled: true}\n"
}

// upLinks is the links part of up.json.
type upLinks struct {
	Links []struct {
		Name  string `json:"name"`
		Admin string `json:"admin"`
	} `json:"links"`
}

// setLinkLatency sets the one-way latency of up's link proxy name.
func setLinkLatency(t testing.TB, st upState, name string, latency time.Duration) {
	t.Helper()
	var links upLinks
	data, err := os.ReadFile(filepath.Join(filepath.Dir(st.Topology), "up.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &links); err != nil {
		t.Fatal(err)
	}
	for _, l := range links.Links {
		if l.Name != name {
			continue
		}
		body, _ := json.Marshal(map[string]string{"latency": latency.String()})
		req, _ := http.NewRequest("PUT", l.Admin+"/latency", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e2eAdmin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("set latency of link %s: %s", name, resp.Status)
		}
		return
	}
	t.Fatalf("no link %s in up.json", name)
}

// timedAck is an acknowledged agent turn, when the client got it and which
// region answered.
type timedAck struct {
	ack
	done   time.Time
	region string
}

// timedAgentLoad is agentLoad recording when each turn was acknowledged
// and by which region: workers each hold a conversation and take turns
// through base until stop closes (at most maxTurns each), retrying a
// failed turn with its Idempotency-Key for up to 30s.
func timedAgentLoad(t *testing.T, base string, workers, maxTurns int, stop <-chan struct{}) []timedAck {
	client := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey(e2eKey), option.WithMaxRetries(0),
		option.WithRequestTimeout(10*time.Second))
	var mu sync.Mutex
	var acks []timedAck
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			conv, err := client.Conversations.New(context.Background(), conversations.ConversationNewParams{})
			if err != nil {
				t.Errorf("worker %d: create conversation: %v", w, err)
				return
			}
			for n := range maxTurns {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("async-%d-%d-%d", w, n, time.Now().UnixNano())
				deadline := time.Now().Add(30 * time.Second)
				for {
					var raw *http.Response
					resp, err := client.Responses.New(context.Background(), responses.ResponseNewParams{
						Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String(fmt.Sprintf("turn %d of worker %d", n, w))},
						Conversation: responses.ResponseNewParamsConversationUnion{OfString: openai.String(conv.ID)},
					}, option.WithJSONSet("agent_reference", map[string]string{"type": "agent_reference", "name": "support"}),
						option.WithHeader("Idempotency-Key", key), option.WithResponseInto(&raw))
					if err == nil {
						a := timedAck{ack: ack{conv: conv.ID, resp: resp.ID}, done: time.Now()}
						if raw != nil {
							a.region = raw.Header.Get("X-Understudy-Region")
						}
						for _, o := range resp.Output {
							a.items = append(a.items, o.ID)
						}
						mu.Lock()
						acks = append(acks, a)
						mu.Unlock()
						break
					}
					if time.Now().After(deadline) {
						t.Errorf("worker %d: turn %d never acknowledged: %v", w, n, err)
						return
					}
					<-time.After(100 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	return acks
}

// TestAsyncFailoverLossWithinLag runs two regions under `up` with async
// replication and 25 ms of one-way latency on the replication link (so
// the standby is always a little behind), takes agent turns through the
// edge, reads the primary's replication lag, SIGKILLs the primary region
// at once and lets the controller fail over. Every acknowledged turn whose
// output items the new primary lacks is lost; the test asserts the count
// is at most the lag read just before the kill (in events, each lost turn
// holding at least one of them) plus the turns the old primary
// acknowledged after that read (their events may postdate it), and
// reports both numbers.
func TestAsyncFailoverLossWithinLag(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole topology with load")
	}
	_, st := startUp(t, asyncTopology("async"), 6)
	_, edge, _ := st.component("edge")
	_, ctl, _ := st.component("controller")
	_, east, _ := st.component("gateway/eastus2")
	_, central, _ := st.component("gateway/centralus")
	waitFor(t, 20*time.Second, "a writable primary and its standby", func() bool {
		s, err := controllerStatus(t, ctl)
		return err == nil && s.Regions["eastus2"].Readiness.Writable && s.Regions["centralus"].Readiness.Role == "standby"
	})
	setLinkLatency(t, st, "eastus2-to-centralus", 25*time.Millisecond)

	stop := make(chan struct{})
	var acks []timedAck
	var done sync.WaitGroup
	done.Go(func() { acks = timedAgentLoad(t, edge, 4, 500, stop) })
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		done.Wait()
	}()
	<-time.After(3 * time.Second)

	// The lag, then the kill, with nothing in between.
	measured := time.Now()
	var state adminState
	if err := getJSONVia(http.DefaultClient, east+"/admin/state", e2eAdmin, &state); err != nil {
		t.Fatal(err)
	}
	pid, _, _ := st.component("gateway/eastus2")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	simPid, _, _ := st.component("modelsim/eastus2/gpt-4.1-mini-1")
	syscall.Kill(simPid, syscall.SIGKILL)
	rep := state.Replication["centralus"]
	lag := rep.LagEvents

	var s ctlStatus
	waitFor(t, 30*time.Second, "an automatic failover", func() bool {
		var err error
		s, err = controllerStatus(t, ctl)
		return err == nil && s.Last != nil && s.Last.Kind == "failover" && (s.Last.Status == "completed" || s.Last.Status == "failed")
	})
	if s.Last.Status != "completed" || s.Primary != "centralus" {
		t.Fatalf("failover: %+v", s.Last)
	}
	<-time.After(time.Second) // turns acknowledged by the new primary too
	close(stop)
	done.Wait()

	var before []ack
	window, fromOld := 0, 0
	for _, a := range acks {
		if a.region != "eastus2" {
			continue
		}
		fromOld++
		before = append(before, a.ack)
		if a.done.After(measured) {
			window++
		}
	}
	if fromOld < 20 {
		t.Fatalf("only %d turns acknowledged by the primary before the kill", fromOld)
	}
	missing := lost(t, central, before)
	t.Logf("%d turns acknowledged by eastus2 (%d in all); lag read just before the kill: %d events (%.3fs, acked seq %d of %d); "+
		"%d turns acknowledged after that read (%.1fms before the kill); lost on the new primary: %d turns; controller's RPO: %v events",
		fromOld, len(acks), lag, rep.LagSeconds, rep.AckedSeq, rep.LocalSeq, window, killed.Sub(measured).Seconds()*1000,
		len(missing), s.Last.Data["rpo_events"])
	if int64(len(missing)) > lag+int64(window) {
		t.Errorf("%d acknowledged turns lost, more than the lag of %d events read before the kill (+%d turns acknowledged after the read)",
			len(missing), lag, window)
	}
	if m := lost(t, central, ackList(acks)); len(m) > len(missing) {
		t.Errorf("%d turns acknowledged by the new primary are missing on it", len(m)-len(missing))
	}
}

func ackList(acks []timedAck) []ack {
	out := make([]ack, len(acks))
	for i, a := range acks {
		out[i] = a.ack
	}
	return out
}

// Replication benchmarks: two regions served in-process on loopback (the
// same region.Server the gateway command runs), the standby's gateway
// behind a linkproxy that adds a one-way delay: the topology's url for the
// standby is the proxy's address while it listens on its own port, so
// every byte the primary sends it (journal batches, lease vouching) and
// every answer crosses the delay. A lease grantor stands in for the
// controller on loopback without delay.

// replPair is one primary and one standby.
type replPair struct {
	east, central *region.Server
	eastURL       string
	proxy         *linkproxy.Proxy
}

// startReplPair starts the pair; batch is replication.batch_size (0: the
// default, 500).
func startReplPair(b *testing.B, mode string, delay time.Duration, batch int) *replPair {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sim := httptest.NewServer(modelsim.New(modelsim.Config{Model: e2eModel, Version: "2025-04-14"}, nil).Handler())
	grantor := lease.NewGrantor(3*time.Second, "eastus2", 1)
	ctl := httptest.NewServer(lease.Handler(grantor, "/v1/lease", "rep-bench-0123456789abcdef", e2eAdmin))
	lnEast, err1 := net.Listen("tcp", "127.0.0.1:0")
	lnCentral, err2 := net.Listen("tcp", "127.0.0.1:0")
	if err1 != nil || err2 != nil {
		b.Fatal(err1, err2)
	}
	proxy := linkproxy.New(linkproxy.Config{Name: "eastus2-to-centralus", Upstream: lnCentral.Addr().String(), Latency: delay}, nil)
	if err := proxy.Start(ctx); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	off := false
	tp := &topology.Topology{
		DataDir:     dir,
		Keys:        []topology.Key{{Name: "bench", Key: topology.NewSecret(e2eKey)}},
		Admin:       topology.Admin{Token: topology.NewSecret(e2eAdmin)},
		Deployments: []topology.Deployment{{Name: e2eModel, Version: "2025-04-14"}},
		Replication: topology.Replication{Mode: mode, Secret: topology.NewSecret("rep-bench-0123456789abcdef"),
			SyncTimeout: topology.Duration(5 * time.Second), BatchSize: batch},
		Controller: topology.Controller{Listen: "127.0.0.1:1", URL: ctl.URL, LeaseTTL: topology.Duration(3 * time.Second)},
		Gateway:    topology.Gateway{AccessLog: &off},
		Regions: []topology.Region{
			{Name: "eastus2", Listen: lnEast.Addr().String(), Store: topology.Store{Path: filepath.Join(dir, "eastus2.db")},
				Backends: map[string][]topology.Backend{e2eModel: {{Kind: "openai", URL: sim.URL}}}},
			{Name: "centralus", Listen: lnCentral.Addr().String(), URL: "http://" + proxy.Addr().String(),
				Store:    topology.Store{Path: filepath.Join(dir, "centralus.db")},
				Backends: map[string][]topology.Backend{e2eModel: {{Kind: "openai", URL: sim.URL}}}},
		},
	}
	if mode == "async" {
		tp.Targets.RPO = topology.Duration(5 * time.Second)
	}
	tp.Default()
	if err := tp.Validate(); err != nil {
		b.Fatal(err)
	}
	p := &replPair{eastURL: "http://" + lnEast.Addr().String(), proxy: proxy}
	var wg sync.WaitGroup
	for _, s := range []struct {
		name string
		ln   net.Listener
		dst  **region.Server
	}{{"eastus2", lnEast, &p.east}, {"centralus", lnCentral, &p.central}} {
		srv, err := region.New(tp, s.name, region.Options{})
		if err != nil {
			b.Fatal(err)
		}
		*s.dst = srv
		wg.Go(func() {
			if err := srv.Run(ctx, s.ln); err != nil {
				b.Errorf("region %s: %v", s.name, err)
			}
		})
	}
	b.Cleanup(func() {
		cancel()
		wg.Wait()
		proxy.Close(context.Background())
		ctl.Close()
		sim.Close()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := p.east.State(ctx)
		if err == nil && st.Lease != nil && st.Lease.Valid && st.Replication["centralus"].Connected {
			return p
		}
		if time.Now().After(deadline) {
			b.Fatalf("the primary did not get its lease and reach its standby: %+v %v", st, err)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// appendItems appends n user messages to conv in one request.
func appendItems(c *http.Client, base, conv string, n int) error {
	items := make([]map[string]any, n)
	for i := range items {
		items[i] = map[string]any{"type": "message", "role": "user", "content": "benchmark item"}
	}
	body, _ := json.Marshal(map[string]any{"items": items})
	req, _ := http.NewRequest("POST", base+"/v1/conversations/"+conv+"/items", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e2eKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("append %d items: %s", n, resp.Status)
	}
	return nil
}

func newConversation(b *testing.B, c *http.Client, base string) string {
	b.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/conversations", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+e2eKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var conv struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&conv); err != nil || conv.ID == "" {
		b.Fatalf("create conversation: %s %v", resp.Status, err)
	}
	return conv.ID
}

// benchPercentile returns the p-th percentile (0..1) of xs, which it sorts.
func benchPercentile[T cmp.Ordered](xs []T, p float64) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	slices.Sort(xs)
	return xs[min(len(xs)-1, int(p*float64(len(xs))))]
}

func benchMs(d time.Duration) float64 { return d.Seconds() * 1000 }

// BenchmarkReplicationWriteLatency measures the latency of one
// conversation item write (one event) acknowledged by a sync primary and
// by an async one, with no delay and with 20 ms of one-way delay between
// the regions. Each iteration writes once to each pair, so both modes see
// the same machine load. Each iteration also times a 64-byte echo across a
// second linkproxy with the same delay (link-rtt): the round trip the link
// really has, which is longer than 2 × delay because the proxy's timers
// fire late (Go's netpoller sleeps in whole milliseconds). sync-extra-ms is
// p50(sync) − p50(async) − p50(link-rtt): what sync acknowledgement costs
// beyond the network (target ≤ 2 ms).
func BenchmarkReplicationWriteLatency(b *testing.B) {
	for _, delay := range []time.Duration{0, 20 * time.Millisecond} {
		b.Run(fmt.Sprintf("delay=%v", delay), func(b *testing.B) {
			pairs := map[string]*replPair{"async": startReplPair(b, "async", delay, 0), "sync": startReplPair(b, "sync", delay, 0)}
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			convs := map[string]string{}
			for mode, p := range pairs {
				convs[mode] = newConversation(b, c, p.eastURL)
				for range 5 { // warm connections and the shipper
					if err := appendItems(c, p.eastURL, convs[mode], 1); err != nil {
						b.Fatal(err)
					}
				}
			}
			echo := dialEchoLink(b, delay)
			ping := make([]byte, 64)
			lat := map[string][]time.Duration{}
			for b.Loop() {
				for _, mode := range []string{"async", "sync"} {
					start := time.Now()
					if err := appendItems(c, pairs[mode].eastURL, convs[mode], 1); err != nil {
						b.Fatal(err)
					}
					lat[mode] = append(lat[mode], time.Since(start))
				}
				start := time.Now()
				if _, err := echo.Write(ping); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(echo, ping); err != nil {
					b.Fatal(err)
				}
				lat["link-rtt"] = append(lat["link-rtt"], time.Since(start))
			}
			for _, mode := range []string{"async", "sync", "link-rtt"} {
				b.ReportMetric(benchMs(benchPercentile(lat[mode], 0.50)), mode+"-p50-ms")
				b.ReportMetric(benchMs(benchPercentile(lat[mode], 0.99)), mode+"-p99-ms")
			}
			b.ReportMetric(benchMs(benchPercentile(lat["sync"], 0.50)-benchPercentile(lat["async"], 0.50)-benchPercentile(lat["link-rtt"], 0.50)), "sync-extra-ms")
		})
	}
}

// dialEchoLink returns a connection through a linkproxy with the given
// one-way delay to a server that echoes what it reads.
func dialEchoLink(b *testing.B, delay time.Duration) net.Conn {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer conn.Close(); io.Copy(conn, conn) }()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	proxy := linkproxy.New(linkproxy.Config{Name: "echo", Upstream: ln.Addr().String(), Latency: delay}, nil)
	if err := proxy.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); proxy.Close(context.Background()) })
	conn, err := net.Dial("tcp", proxy.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return conn
}

// BenchmarkReplicationThroughput measures, in async mode, with no delay
// and with 20 ms one-way between the regions:
//
//   - steady: a write load offered at 1,000 events/s (requests of 20
//     items, one event each, from at most 8 concurrent clients: about what
//     the primary's own fsync-per-commit write path sustains on a busy
//     2-core machine; REPL_BENCH_RATE=N offers N instead); the primary's lag
//     (events and seconds) sampled every 10 ms, and the rate the standby
//     applied events at from the first write until it caught up;
//   - catchup: a backlog written while the link is cut, then the rate the
//     standby applies it at once the shipper is through again (from its
//     first progress to caught up): the replication capacity, with the
//     default batch of 500 events and, across the delay, with 2,000.
//
// One iteration is one request of 20 events; run with -benchtime=1000x
// for 20,000 events.
func BenchmarkReplicationThroughput(b *testing.B) {
	const perRequest = 20
	for _, delay := range []time.Duration{0, 20 * time.Millisecond} {
		b.Run(fmt.Sprintf("delay=%v/steady", delay), func(b *testing.B) {
			rate := 1000 // events/s offered
			if v, err := strconv.Atoi(os.Getenv("REPL_BENCH_RATE")); err == nil && v > 0 {
				rate = v
			}
			p := startReplPair(b, "async", delay, 0)
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
			var convs []string
			for range 8 {
				convs = append(convs, newConversation(b, c, p.eastURL))
			}
			ctx := context.Background()
			st0, _ := p.central.State(ctx)
			var lagEv []int64
			var lagS []float64
			sampling := make(chan struct{})
			var sampler sync.WaitGroup
			sampler.Go(func() {
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-sampling:
						return
					case <-tick.C:
					}
					if st, err := p.east.State(ctx); err == nil {
						r := st.Replication["centralus"]
						lagEv, lagS = append(lagEv, r.LagEvents), append(lagS, r.LagSeconds)
					}
				}
			})
			sem := make(chan string, len(convs))
			for _, conv := range convs {
				sem <- conv
			}
			var writers sync.WaitGroup
			var failed atomic.Int64
			interval := time.Second * perRequest / time.Duration(rate)
			start := time.Now()
			next := start
			n := 0
			for b.Loop() {
				next = next.Add(interval)
				if d := time.Until(next); d > 0 {
					<-time.After(d)
				}
				conv := <-sem // at most 8 requests in flight
				n++
				writers.Go(func() {
					if err := appendItems(c, p.eastURL, conv, perRequest); err != nil {
						failed.Add(1)
					}
					sem <- conv
				})
			}
			writers.Wait()
			offered := time.Since(start)
			east, _ := p.east.State(ctx)
			for {
				if st, _ := p.central.State(ctx); st.Position.Seq >= east.Position.Seq {
					break
				}
				<-time.After(2 * time.Millisecond)
			}
			caughtUp := time.Since(start)
			close(sampling)
			sampler.Wait()
			if failed.Load() > 0 {
				b.Fatalf("%d writes failed", failed.Load())
			}
			st1, _ := p.central.State(ctx)
			applied := st1.Position.Seq - st0.Position.Seq
			b.ReportMetric(float64(n*perRequest)/offered.Seconds(), "offered-events/s")
			b.ReportMetric(float64(applied)/caughtUp.Seconds(), "replicated-events/s")
			b.ReportMetric(float64(benchPercentile(lagEv, 0.50)), "lag-p50-events")
			b.ReportMetric(float64(benchPercentile(lagEv, 0.99)), "lag-p99-events")
			b.ReportMetric(float64(benchPercentile(lagEv, 1)), "lag-max-events")
			b.ReportMetric(benchPercentile(lagS, 0.99)*1000, "lag-p99-ms")
		})
		for _, batch := range []int{500, 2000} {
			if delay == 0 && batch != 500 {
				continue
			}
			b.Run(fmt.Sprintf("delay=%v/catchup-batch=%d", delay, batch), func(b *testing.B) {
				benchCatchup(b, delay, batch)
			})
		}
	}
}

// benchCatchup writes a backlog (one request of 20 events per iteration)
// while the link is cut, restores it and measures how fast the standby
// applies the backlog.
func benchCatchup(b *testing.B, delay time.Duration, batch int) {
	const perRequest = 20
	p := startReplPair(b, "async", delay, batch)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	conv := newConversation(b, c, p.eastURL)
	ctx := context.Background()
	for {
		if st, _ := p.east.State(ctx); st.Replication["centralus"].LagEvents == 0 {
			break
		}
		<-time.After(5 * time.Millisecond)
	}
	st0, _ := p.central.State(ctx)
	p.proxy.Cut()
	for b.Loop() {
		if err := appendItems(c, p.eastURL, conv, perRequest); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	east, _ := p.east.State(ctx)
	backlog := east.Position.Seq - st0.Position.Seq
	p.proxy.Restore()
	var first time.Time
	firstSeq := st0.Position.Seq
	for {
		st, _ := p.central.State(ctx)
		if first.IsZero() && st.Position.Seq > st0.Position.Seq {
			first, firstSeq = time.Now(), st.Position.Seq
		}
		if st.Position.Seq >= east.Position.Seq {
			break
		}
		<-time.After(5 * time.Millisecond)
	}
	took := time.Since(first)
	rate := 0.0
	if took > 0 && east.Position.Seq > firstSeq {
		rate = float64(east.Position.Seq-firstSeq) / took.Seconds()
	}
	b.ReportMetric(float64(backlog), "backlog-events")
	b.ReportMetric(rate, "catchup-events/s")
}
