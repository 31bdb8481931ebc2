package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// demoRun is `understudy demo` running as its own process, with its
// temporary data under tmp ($TMPDIR of the process).
type demoRun struct {
	cmd    *exec.Cmd
	tmp    string
	ready  map[string]string // key=value pairs of the ready line
	stdout *lockedBuffer     // every line it printed on stdout
	stderr *lockedBuffer
	done   chan struct{}
	err    error // exit status, valid after done
}

// startDemo runs `understudy demo` with a private $TMPDIR and waits (up to
// 2 minutes) for its ready line. The process is killed when the test ends
// if it still runs.
func startDemo(t *testing.T, args ...string) *demoRun {
	t.Helper()
	d := &demoRun{tmp: t.TempDir(), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(binary(t), append([]string{"demo"}, args...)...)
	d.cmd.Env = append(os.Environ(), "TMPDIR="+d.tmp)
	d.cmd.Stderr = d.stderr
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readyc := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(d.stdout, line)
			if rest, ok := strings.CutPrefix(line, "ready "); ok {
				kv := map[string]string{}
				for _, f := range strings.Fields(rest) {
					if k, v, ok := strings.Cut(f, "="); ok {
						kv[k] = v
					}
				}
				select {
				case readyc <- kv:
				default:
				}
			}
		}
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			// Kill the whole group: the demo and the components up started.
			syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("--- demo stdout ---\n%s--- demo stderr ---\n%s", d.stdout.String(), d.stderr.String())
		}
	})
	select {
	case d.ready = <-readyc:
	case <-d.done:
		t.Fatalf("demo exited before it was ready (%v):\n%s", d.err, d.stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("demo not ready within 2 minutes:\n%s", d.stderr.String())
	}
	return d
}

// interrupt sends SIGINT (a terminal's Ctrl-C) and waits for the exit.
func (d *demoRun) interrupt(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not stop within 60s of SIGINT")
	}
	if d.err != nil {
		t.Fatalf("demo exited with %v:\n%s", d.err, d.stderr.String())
	}
}

// TestDemo runs `understudy demo` as a user would: one ready line, then
// an OpenAI client talks to the edge it printed (a chat completion and an
// agent turn through the Responses API), then Ctrl-C stops everything and
// the temporary data is gone.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole demo topology")
	}
	d := startDemo(t)
	edge, dash, key := d.ready["edge"], d.ready["dashboard"], d.ready["key"]
	if !strings.HasPrefix(edge, "http://127.0.0.1:") || !strings.HasPrefix(key, "sk-") ||
		!strings.HasPrefix(dash, "http://127.0.0.1:") || !strings.Contains(dash, "/#code=") {
		t.Fatalf("ready line: %q", d.stdout.String())
	}
	entries, _ := os.ReadDir(d.tmp)
	if len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "understudy-demo-") {
		t.Fatalf("want one understudy-demo-* directory in $TMPDIR while running, have %v", entries)
	}

	client := openai.NewClient(option.WithBaseURL(edge+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(2))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	chat, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "gpt-4.1-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
	})
	if err != nil {
		t.Fatalf("chat completion through the demo's edge: %v", err)
	}
	if len(chat.Choices) == 0 || chat.Choices[0].Message.Content == "" {
		t.Fatalf("empty chat completion: %+v", chat)
	}
	resp, err := client.Responses.New(ctx, responses.ResponseNewParams{
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Where is order A-1001?")},
	}, option.WithJSONSet("agent_reference", map[string]string{"type": "agent_reference", "name": "support-agent"}))
	if err != nil {
		t.Fatalf("agent turn through the demo's edge: %v", err)
	}
	if resp.Status != "completed" || len(resp.Output) == 0 {
		t.Fatalf("agent turn: status %q, %d output items", resp.Status, len(resp.Output))
	}

	d.interrupt(t)
	if lines := strings.Split(strings.TrimSpace(d.stdout.String()), "\n"); len(lines) != 1 {
		t.Errorf("demo printed %d lines on stdout, want exactly the ready line:\n%s", len(lines), d.stdout.String())
	}
	if entries, _ := os.ReadDir(d.tmp); len(entries) != 0 {
		t.Errorf("temporary data left after Ctrl-C: %v", entries)
	}
}
