// Package cmdtest runs the `understudy linkproxy` command in-process. It is
// a separate package so the proxy's own tests do not depend on every
// component the command registry links in.
package cmdtest_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/understudy/understudy/internal/cli"
)

// TestCommand runs `understudy linkproxy` in-process: it prints its ready
// line, forwards, obeys its admin API and stops when ctx is cancelled.
func TestCommand(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, outW := io.Pipe()
	var stderr bytes.Buffer
	env := &cli.Env{Stdin: strings.NewReader(""), Stdout: outW, Stderr: &stderr, Getenv: func(string) string { return "" }}
	code := make(chan int, 1)
	go func() {
		code <- cli.Main(ctx, env, []string{"linkproxy", "--name", "db", "--upstream", echo.Addr().String(),
			"--latency", "1ms", "--admin", "127.0.0.1:0", "--admin-token", "tok-0123456789abcdef"})
		outW.Close()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("no ready line: %v; stderr %s", err, stderr.String())
	}
	fields := map[string]string{}
	for _, f := range strings.Fields(line)[1:] {
		k, v, _ := strings.Cut(f, "=")
		fields[k] = v
	}
	if !strings.HasPrefix(line, "ready ") || fields["component"] != "linkproxy" ||
		!strings.HasPrefix(fields["url"], "tcp://127.0.0.1:") || !strings.HasPrefix(fields["admin"], "http://127.0.0.1:") {
		t.Fatalf("ready line = %q", line)
	}

	c, err := net.Dial("tcp", strings.TrimPrefix(fields["url"], "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo through the command: %q, %v", buf, err)
	}

	req, _ := http.NewRequest("POST", fields["admin"]+"/links/db/cut", nil)
	req.Header.Set("Authorization", "Bearer tok-0123456789abcdef")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("admin cut: status %d", resp.StatusCode)
	}
	if _, err := c.Read(buf); err == nil {
		t.Fatal("connection survived a cut through the admin API")
	}

	cancel()
	if got := <-code; got != 0 {
		t.Fatalf("exit code %d after cancel, want 0; stderr %s", got, stderr.String())
	}
}

func TestCommandMisuse(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"linkproxy"}, "--upstream is required"},
		{[]string{"linkproxy", "--upstream", "nohost"}, "not host:port"},
		{[]string{"linkproxy", "--upstream", "127.0.0.1:1", "--latency", "soon"}, "latency"},
		{[]string{"linkproxy", "--upstream", "127.0.0.1:1", "--jitter", "-1s"}, "jitter"},
		{[]string{"linkproxy", "--upstream", "127.0.0.1:1", "--admin", "0.0.0.0:0"}, "--admin-token is required"},
		{[]string{"linkproxy", "--upstream", "127.0.0.1:1", "extra"}, "unexpected arguments"},
	} {
		var stderr bytes.Buffer
		env := &cli.Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) string { return "" }}
		if code := cli.Main(context.Background(), env, tc.args); code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: stderr %q does not mention %q", tc.args, stderr.String(), tc.want)
		}
	}
}
