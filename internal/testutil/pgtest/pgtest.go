package pgtest

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/understudy/understudy/internal/pgbin"
)

// ErrNoBinaries is returned when the PostgreSQL server binaries are not
// installed.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, postgres, pg_basebackup) not found; install them with: apt-get install -y postgresql")

// Superuser is the database superuser every server is initialised with
// (trust authentication on loopback).
const Superuser = "postgres"

// needed are the binaries a server and a standby need.
var needed = []string{"initdb", "postgres", "pg_basebackup"}

// BinDir returns the directory holding the PostgreSQL server binaries
// (pgbin.Find). ErrNoBinaries when none has them.
func BinDir() (string, error) {
	d, err := pgbin.Find(needed...)
	if err != nil {
		return "", fmt.Errorf("%v: %w", err, ErrNoBinaries)
	}
	return d, nil
}

// runAs is the user server commands run as; nil runs them as ourselves.
type runAs struct {
	name     string
	uid, gid uint32
}

// serverUser returns the user to run the server as: nil unless we are
// root, then UNDERSTUDY_PG_USER (default nobody).
func serverUser() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	name := os.Getenv("UNDERSTUDY_PG_USER")
	if name == "" {
		name = "nobody"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs another user: %w (set UNDERSTUDY_PG_USER)", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil || uid == 0 {
		return nil, fmt.Errorf("user %s: unusable uid/gid %s/%s", name, u.Uid, u.Gid)
	}
	return &runAs{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
}

// Options configure a server.
type Options struct {
	// Settings are extra server settings ("name=value"), passed as -c
	// flags, after (so overriding) the harness's defaults. Default none.
	Settings []string
}

// Server is a PostgreSQL server the harness started.
type Server struct {
	// Dir is the server's temporary folder: the data directory Data and
	// the server log postgres.log.
	Dir, Data string
	// Port is the loopback TCP port the server listens on.
	Port int

	bin      string
	user     *runAs
	settings []string
	// primary and slot are set on a standby: Close drops its slot.
	primary *Server
	slot    string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the running postmaster has exited
}

// New initialises a data directory (initdb -k: data checksums) in a new
// temporary folder and starts a server on a free loopback port. Close
// stops it and removes the folder.
func New(ctx context.Context, opts Options) (*Server, error) {
	s, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	out, err := s.run(ctx, "initdb", "-D", s.Data, "-U", Superuser, "--auth=trust",
		"-k", "-E", "UTF8", "--no-locale", "--no-sync")
	if err != nil {
		s.removeDir()
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if err := s.Restart(ctx); err != nil {
		s.removeDir()
		return nil, err
	}
	return s, nil
}

// prepare finds the binaries and the user and makes the folder.
func prepare(opts Options) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	u, err := serverUser()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: its parents are private to root. The system temp
	// folder (sticky, world-writable) is traversable by the server user.
	dir, err := os.MkdirTemp("", "understudy-pg-")
	if err != nil {
		return nil, fmt.Errorf("temporary folder: %w", err)
	}
	s := &Server{Dir: dir, Data: filepath.Join(dir, "data"), bin: bin, user: u, settings: opts.Settings}
	if u != nil {
		if err := os.Chown(dir, int(u.uid), int(u.gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("give %s to %s: %w", dir, u.name, err)
		}
	}
	return s, nil
}

// command builds a server-side command run as the server user.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.Dir
	env := []string{"LC_ALL=C", "LANG=C", "PATH=" + os.Getenv("PATH"), "TZ=UTC"}
	if s.user != nil {
		env = append(env, "HOME="+s.Dir, "USER="+s.user.name)
	} else {
		env = append(env, "HOME="+os.Getenv("HOME"))
	}
	cmd.Env = env // no PG* variables leak in from the test's environment
	cmd.SysProcAttr = procAttr(s.user)
	return cmd
}

// run runs a short command to completion, returning its combined output.
func (s *Server) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := s.command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		return out.Bytes(), err
	case <-ctx.Done():
		cmd.Process.Kill()
		<-waited
		return out.Bytes(), ctx.Err()
	}
}

// readyMarker is what the server logs once it accepts connections
// ("… read-only connections" on a standby).
const readyMarker = "database system is ready to accept"

// Restart starts the server on its data directory, on a new free port if
// the previous one was taken, and returns once it accepts connections. It
// is how New starts a fresh server, and how a test brings back one it
// stopped or killed.
func (s *Server) Restart(ctx context.Context) error {
	if s.Pid() != 0 {
		return fmt.Errorf("postgres on port %d is already running", s.Port)
	}
	var err error
	for range 5 {
		var port int
		if port, err = freePort(); err != nil {
			return err
		}
		if s.Port == 0 || portTaken(s.Port) {
			s.Port = port
		}
		var log string
		if log, err = s.start(ctx); err == nil {
			return nil
		}
		if ctx.Err() != nil || !strings.Contains(log, "could not bind") {
			return err
		}
		s.Port = 0 // lost the race for the port: pick another
	}
	return err
}

// start starts the postmaster and waits for readiness; on failure it
// returns the end of the server log.
func (s *Server) start(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running() {
		return "", fmt.Errorf("postgres on port %d is already running", s.Port)
	}
	args := []string{"-D", s.Data, "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		"-c", "max_connections=200",
		"-c", "shared_buffers=32MB",
		"-c", "lc_messages=C",
	}
	for _, kv := range s.settings {
		args = append(args, "-c", kv)
	}
	logFile, err := os.OpenFile(filepath.Join(s.Dir, "postgres.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return "", fmt.Errorf("server log: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		logFile.Close()
		return "", fmt.Errorf("server log pipe: %w", err)
	}
	cmd := s.command("postgres", args...)
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		logFile.Close()
		return "", fmt.Errorf("start postgres: %w", err)
	}
	pw.Close()
	ready := make(chan struct{})
	tail := &tailBuffer{}
	// The log is read until every server process has closed it; Wait is
	// separate, so an exited postmaster is seen even while backends that
	// have not noticed yet still hold the pipe.
	go func() {
		defer logFile.Close()
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		seen := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			tail.add(line)
			if !seen && strings.Contains(line, readyMarker) {
				seen = true
				close(ready)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	select {
	case <-ready:
		return "", nil
	case <-done:
		return tail.String(), fmt.Errorf("postgres on port %d exited before accepting connections: %s", s.Port, tail.String())
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return "", fmt.Errorf("start postgres on port %d: %w; log: %s", s.Port, ctx.Err(), tail.String())
	}
}

// running reports whether the postmaster runs. Callers hold s.mu.
func (s *Server) running() bool {
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Pid is the postmaster's process id, 0 when it is not running.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop shuts the server down: SIGINT to the postmaster (fast shutdown:
// sessions are ended, a checkpoint is written), then SIGKILL to its
// process group if it has not exited within ctx or 20 s. Stopping a
// stopped server does nothing.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return nil
	}
	pid := s.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		return fmt.Errorf("stop postgres pid %d: %w", pid, err)
	}
	t := time.NewTimer(20 * time.Second)
	defer t.Stop()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
	case <-t.C:
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	<-s.done
	return fmt.Errorf("stop postgres pid %d: no clean shutdown, killed", pid)
}

// Kill crashes the server: SIGKILL to the postmaster and every backend
// (its process group), as a machine failure would. Committed transactions
// survive; Restart runs crash recovery.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

// Close stops the server and removes its folder. A standby also drops
// its replication slot on its primary, if the primary runs.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.Stop(ctx)
	if err == nil && s.primary != nil && s.primary.Pid() != 0 {
		err = s.primary.dropSlot(ctx, s.slot)
	}
	return errors.Join(err, s.removeDir())
}

func (s *Server) removeDir() error {
	if err := os.RemoveAll(s.Dir); err != nil {
		return fmt.Errorf("remove %s: %w", s.Dir, err)
	}
	return nil
}

// Log returns the server log so far, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "postgres.log"))
	return string(b)
}

// DSN is the connection string for database db as the superuser.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, s.Port, db)
}

// Open opens a database/sql handle (pgx driver) on database db. The
// caller closes it.
func (s *Server) Open(db string) (*sql.DB, error) {
	return sql.Open("pgx", s.DSN(db))
}

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CreateDatabase creates database name (lower-case letters, digits and
// underscores) and returns its DSN.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	if !identRE.MatchString(name) {
		return "", fmt.Errorf("database name %q: want [a-z_][a-z0-9_]{0,62}", name)
	}
	db, err := s.Open("postgres")
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return s.DSN(name), nil
}

var (
	dbSeqMu sync.Mutex
	dbSeq   int
	nonWord = regexp.MustCompile(`[^a-z0-9]+`)
)

// NewDatabase creates a database for t, named after the test, and returns
// its DSN. The database is left behind: it goes with the server.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	dbSeqMu.Lock()
	dbSeq++
	n := dbSeq
	dbSeqMu.Unlock()
	base := strings.Trim(nonWord.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	name := fmt.Sprintf("t%d_%s", n, base)
	if len(name) > 63 {
		name = name[:63]
	}
	dsn, err := s.CreateDatabase(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// Start starts a server for t and stops it when t ends. Without the
// binaries it skips t, saying how to install them, except under CI=true,
// where it fails t.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s, err := New(ctx, opts)
	if err != nil {
		SkipOrFail(t, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stop postgres: %v", err)
		}
	})
	return s
}

// SkipOrFail ends t for err: a skip when the binaries are missing outside
// CI, a failure otherwise.
func SkipOrFail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNoBinaries) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	t.Fatal(err)
}

var shared struct {
	main bool
	once sync.Once
	srv  *Server
	err  error
}

// Main runs the tests of m and then stops the server Shared started.
// Call it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	shared.main = true
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stop shared server:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Shared returns the test binary's shared server, starting it on first
// use (the package's TestMain must call Main). Tests give themselves a
// database on it with NewDatabase.
func Shared(t testing.TB) *Server {
	t.Helper()
	if !shared.main {
		t.Fatal("pgtest.Shared needs TestMain to call pgtest.Main")
	}
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		shared.srv, shared.err = New(ctx, Options{})
	})
	if shared.err != nil {
		SkipOrFail(t, shared.err)
	}
	return shared.srv
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portTaken reports whether something listens on the loopback port.
func portTaken(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return true
	}
	l.Close()
	return false
}

// tailBuffer keeps the last lines of the server log.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *tailBuffer) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, line)
	if len(b.lines) > 20 {
		b.lines = b.lines[1:]
	}
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}
