package daggerengine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"dagger.io/dagger"
	"dagger.io/dagger/engineconn"

	"github.com/ipex-flake/ipex-flake/internal/logtail"
	"github.com/ipex-flake/ipex-flake/internal/procgroup"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

// DefaultConnectTimeout bounds connecting to the engine when
// engine.Options.ConnectTimeout is 0.
const DefaultConnectTimeout = 60 * time.Second

// CloseGrace is how long the dagger CLI gets to end its session once its
// stdin is closed, and KillGrace how long it gets after SIGTERM before its
// process group is killed with SIGKILL. A CLI that never opened a session
// has nothing to finish: it gets ConnectKillGrace after SIGTERM, so a
// failed connection ends close to its deadline.
var (
	CloseGrace       = 10 * time.Second
	KillGrace        = 5 * time.Second
	ConnectKillGrace = time.Second
)

// sessionEnv are the variables the dagger CLI is given, when the
// environment has them: what it needs to find and reach a runner (docker,
// kubectl, proxies, certificates, its cache directories). Nothing else
// reaches it: no tokens, no DAGGER_CLOUD_TOKEN.
var sessionEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TERM", "NO_COLOR", "DO_NOT_TRACK",
	"XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR",
	"DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH",
	"KUBECONFIG", "SSL_CERT_FILE", "SSL_CERT_DIR",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
	envRunnerHost,
}

// route is how the engine is reached: an existing session (port and token)
// or a dagger CLI started here (with the runner host, if one is set).
type route struct {
	port, token string
	cli         string
	runnerHost  string
}

func (r route) String() string {
	switch {
	case r.port != "":
		return "Dagger session on port " + r.port
	case r.runnerHost != "":
		return "dagger CLI " + r.cli + ", engine at " + r.runnerHost
	default:
		return "dagger CLI " + r.cli + ", its default engine"
	}
}

// findRoute decides how to reach an engine, the way Available describes.
func findRoute(getenv func(string) string) (route, error) {
	runner := getenv(envRunnerHost)
	if port := getenv(envSessionPort); port != "" {
		if _, err := strconv.Atoi(port); err != nil {
			return route{}, fmt.Errorf("no Dagger engine: DAGGER_SESSION_PORT=%q is not a port number", port)
		}
		if getenv(envSessionToken) == "" {
			return route{}, errors.New("no Dagger engine: DAGGER_SESSION_PORT is set but DAGGER_SESSION_TOKEN is not")
		}
		return route{port: port, token: getenv(envSessionToken)}, nil
	}
	if bin := getenv(envCLIBin); bin != "" {
		p := bin
		if !strings.Contains(bin, "/") {
			p = engine.FindExecutable(bin, getenv("PATH"))
		}
		if !isExecutable(p) {
			return route{}, fmt.Errorf("no Dagger engine: _EXPERIMENTAL_DAGGER_CLI_BIN=%s is not an executable file: point it at the dagger CLI binary", bin)
		}
		return route{cli: p, runnerHost: runner}, nil
	}
	if p := engine.FindExecutable("dagger", getenv("PATH")); p != "" {
		return route{cli: p, runnerHost: runner}, nil
	}
	if runner != "" {
		return route{}, fmt.Errorf("no dagger CLI to reach the engine at _EXPERIMENTAL_DAGGER_RUNNER_HOST=%s: set _EXPERIMENTAL_DAGGER_CLI_BIN to the dagger CLI binary or put a dagger CLI on PATH (without one the Dagger SDK would download it, which needs internet)", runner)
	}
	return route{}, errors.New("no Dagger engine: neither DAGGER_SESSION_PORT nor _EXPERIMENTAL_DAGGER_CLI_BIN is set and the dagger CLI is not on PATH (without it the Dagger SDK would download the CLI, which needs internet); with a remote engine set _EXPERIMENTAL_DAGGER_RUNNER_HOST as well")
}

func isExecutable(p string) bool {
	if p == "" {
		return false
	}
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// ConnectError says the Dagger engine could not be reached in time or
// refused the session. `--engine auto` falls back to the host on it.
type ConnectError struct {
	// Route names how the engine was to be reached.
	Route string
	// Timeout is the deadline that passed (0 when the attempt failed first).
	Timeout time.Duration
	// Err is the cause; Output the last lines the dagger CLI printed.
	Err    error
	Output string
}

func (e *ConnectError) Error() string {
	var b strings.Builder
	if e.Timeout > 0 {
		check := "check that the engine runs and _EXPERIMENTAL_DAGGER_RUNNER_HOST names it"
		if strings.HasPrefix(e.Route, "Dagger session") {
			check = "check that the session of DAGGER_SESSION_PORT is still open"
		}
		fmt.Fprintf(&b, "the Dagger engine did not answer within %s (%s): %s, or allow longer with --dagger-connect-timeout", e.Timeout, e.Route, check)
	} else {
		fmt.Fprintf(&b, "cannot connect to the Dagger engine (%s): %v", e.Route, e.Err)
	}
	if out := logtail.Lines(e.Output, 3); out != "" {
		fmt.Fprintf(&b, "; dagger said: %s", out)
	}
	return b.String()
}

func (e *ConnectError) Unwrap() error { return e.Err }

// connect reaches the engine along r and asks it one question, all within
// timeout, so an engine that never answers fails here and not in the first
// command. The SDK gets the connection ready-made (dagger.WithConn): it
// never reads the environment, never starts or downloads a CLI itself.
func connect(ctx context.Context, r route, getenv func(string) string, timeout time.Duration, log io.Writer) (*dagger.Client, error) {
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fail := func(err error, s *session) error {
		ce := &ConnectError{Route: r.String(), Err: err}
		if s != nil {
			s.kill()
			// Its group is gone: the rest of what it printed is in the pipe.
			select {
			case <-s.stderrDone:
			case <-time.After(time.Second):
			}
			ce.Output = s.output()
		}
		if errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			ce.Timeout = timeout
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
		return ce
	}

	var c *conn
	if r.port != "" {
		c = newConn(r.port, r.token, nil)
	} else {
		s, err := startSession(r, getenv, log)
		if err != nil {
			return nil, &ConnectError{Route: r.String(), Err: err}
		}
		p, err := s.params(cctx)
		if err != nil {
			return nil, fail(err, s)
		}
		c = newConn(strconv.Itoa(p.Port), p.SessionToken, s)
	}
	client, err := dagger.Connect(cctx, dagger.WithConn(c))
	if err == nil {
		_, err = client.Version(cctx)
	}
	if err != nil {
		c.Client.CloseIdleConnections()
		return nil, fail(err, c.sess)
	}
	return client, nil
}

// conn is the SDK's connection to a session on a loopback port.
type conn struct {
	*http.Client
	host string
	sess *session
}

var _ engineconn.EngineConn = (*conn)(nil)

func newConn(port, token string, s *session) *conn {
	addr := net.JoinHostPort("127.0.0.1", port)
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		},
	}
	return &conn{
		Client: &http.Client{Transport: roundTripper(func(req *http.Request) (*http.Response, error) {
			req = req.Clone(req.Context())
			req.SetBasicAuth(token, "")
			return tr.RoundTrip(req)
		})},
		host: addr,
		sess: s,
	}
}

// Host implements engineconn.EngineConn.
func (c *conn) Host() string { return c.host }

// Close implements engineconn.EngineConn: it ends the CLI's session.
func (c *conn) Close() error {
	c.Client.CloseIdleConnections()
	if c.sess == nil {
		return nil
	}
	return c.sess.stop()
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// session is a `dagger session` child in its own process group. It prints
// the session's port and token as one JSON line and ends when its stdin
// closes; what it leaves behind dies with its process group.
type session struct {
	proc  *procgroup.Process
	stdin *os.File

	paramsCh   chan paramsResult
	stderrDone chan struct{}

	mu   sync.Mutex
	tail []byte

	stopOnce sync.Once
	stopErr  error
}

type paramsResult struct {
	p   engineconn.ConnectParams
	err error
}

// outputTail is how much of the CLI's stderr is kept for error messages.
const outputTail = 2048

func startSession(r route, getenv func(string) string, log io.Writer) (*session, error) {
	var env []string
	for _, k := range sessionEnv {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd := exec.Command(r.cli, "session",
		"--label", "dagger.io/sdk.name:go",
		"--label", "dagger.io/sdk.version:"+engineconn.CLIVersion)
	cmd.Env = env
	cmd.Dir = os.TempDir()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	proc, startErr := procgroup.Start(cmd)
	inR.Close()
	outW.Close()
	errW.Close()
	if startErr != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("start %s: %w", filepath.Base(r.cli), startErr)
	}
	s := &session{proc: proc, stdin: inW, paramsCh: make(chan paramsResult, 1), stderrDone: make(chan struct{})}
	go func() {
		defer close(s.stderrDone)
		defer errR.Close()
		w := io.Writer(s)
		if log != nil {
			w = io.MultiWriter(log, s)
		}
		_, _ = io.Copy(w, errR)
	}()
	go func() {
		defer outR.Close()
		br := bufio.NewReader(outR)
		line, err := br.ReadBytes('\n')
		var res paramsResult
		switch {
		case err != nil:
			res.err = fmt.Errorf("the dagger CLI ended before it opened a session (%v)", err)
		default:
			if err := json.Unmarshal(line, &res.p); err != nil || res.p.Port == 0 {
				res.err = fmt.Errorf("the dagger CLI printed %q, not the session's port and token", strings.TrimSpace(string(line)))
			}
		}
		s.paramsCh <- res
		_, _ = io.Copy(io.Discard, br)
	}()
	return s, nil
}

// Write keeps the tail of the CLI's stderr.
func (s *session) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tail = append(s.tail, p...)
	if n := len(s.tail); n > outputTail {
		s.tail = append([]byte(nil), s.tail[n-outputTail:]...)
	}
	return len(p), nil
}

func (s *session) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.tail)
}

// params waits for the session's port and token.
func (s *session) params(ctx context.Context) (engineconn.ConnectParams, error) {
	select {
	case r := <-s.paramsCh:
		if r.err != nil {
			// Let the CLI finish its last words before they are quoted.
			select {
			case <-s.stderrDone:
			case <-ctx.Done():
			}
		}
		return r.p, r.err
	case <-ctx.Done():
		return engineconn.ConnectParams{}, ctx.Err()
	}
}

// kill ends a session that never opened: SIGTERM to its process group at
// once, SIGKILL after ConnectKillGrace.
func (s *session) kill() {
	s.stopOnce.Do(func() {
		s.stdin.Close()
		_ = s.proc.Stop(ConnectKillGrace)
	})
}

// stop ends an open session: stdin closes (the CLI's own way to end a
// session), then SIGTERM after CloseGrace and SIGKILL after KillGrace.
func (s *session) stop() error {
	s.stopOnce.Do(func() {
		s.stdin.Close()
		t := time.NewTimer(CloseGrace)
		defer t.Stop()
		select {
		case <-s.proc.Done():
		case <-t.C:
			s.stopErr = fmt.Errorf("the dagger session did not end within %s of closing it", CloseGrace)
			_ = s.proc.Stop(KillGrace)
			return
		}
		// Whatever the CLI started in its group goes with it.
		_ = s.proc.Kill()
		var ee *exec.ExitError
		if err := s.proc.Err(); err != nil && !errors.As(err, &ee) {
			s.stopErr = err
		}
	})
	return s.stopErr
}
