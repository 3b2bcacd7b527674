package modules

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mail is one message the SMTP server received.
type mail struct {
	from, user, password string
	to                   []string
	data                 string
}

type smtpBackend struct{ got chan mail }

func (b *smtpBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &smtpSession{b: b}, nil
}

type smtpSession struct {
	b *smtpBackend
	m mail
}

var _ smtp.AuthSession = (*smtpSession)(nil)

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		s.m.user, s.m.password = user, password
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error { s.m.from = from; return nil }
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.m.to = append(s.m.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.data = string(b)
	s.b.got <- s.m
	return nil
}

func (s *smtpSession) Reset()        { s.m = mail{user: s.m.user, password: s.m.password} }
func (s *smtpSession) Logout() error { return nil }

// startSMTP serves SMTP with PLAIN authentication on loopback.
func startSMTP(t *testing.T) (addr string, got chan mail) {
	t.Helper()
	got = make(chan mail, 4)
	srv := smtp.NewServer(&smtpBackend{got: got})
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true // loopback only; net/smtp sends PLAIN to 127.0.0.1
	srv.ErrorLog = stdlog.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String(), got
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// alertmanagerBinary is Debian's name for the alertmanager binary
// (package prometheus-alertmanager); upstream and nixpkgs call it alertmanager.
const alertmanagerBinary = "prometheus-alertmanager"

// startAlertmanager runs Debian's alertmanager on loopback with config and
// returns its base URL once it logs that it listens, and its log.
func startAlertmanager(t *testing.T, config string) (string, *syncBuffer) {
	t.Helper()
	testlib.CheckPath(t, alertmanagerBinary)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "alertmanager.yml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(config), 0o600))
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, alertmanagerBinary,
		"--config.file="+cfgFile,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--log.level=debug")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	log := &syncBuffer{}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			log.WriteString(line + "\n")
			if strings.Contains(line, "Listening on") && strings.Contains(line, addr) {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("alertmanager did not start listening on %s:\n%s", addr, log.String())
	}
	return "http://" + addr, log
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) WriteString(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(v)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAlertmanagerRoutesToSlackAndEmail evaluates nix/lib.nix's
// alertmanagerConfig as the monitoring module does, checks it with amtool,
// runs alertmanager on it and posts an alert: it reaches a Slack webhook
// (httptest) and an SMTP server (go-smtp), with the webhook URL and the SMTP
// password read from files and printed nowhere.
func TestAlertmanagerRoutesToSlackAndEmail(t *testing.T) {
	testlib.CheckPath(t, "amtool")
	secretDir := t.TempDir()
	const webhookSecret = "T0SECRET/B0SECRET/xoxb-webhook-secret"
	const smtpPassword = "smtp-password-secret"

	slackGot := make(chan []byte, 4)
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/services/"+webhookSecret {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		b, _ := io.ReadAll(r.Body)
		slackGot <- b
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(slack.Close)
	webhookFile := filepath.Join(secretDir, "slack-webhook-url")
	require.NoError(t, os.WriteFile(webhookFile, []byte(slack.URL+"/services/"+webhookSecret+"\n"), 0o600))
	passwordFile := filepath.Join(secretDir, "smtp-password")
	require.NoError(t, os.WriteFile(passwordFile, []byte(smtpPassword), 0o600))
	smtpAddr, mails := startSMTP(t)

	var config map[string]any
	evalLib(t, `ipex.alertmanagerConfig {
	  slack = { webhookUrlFile = `+strconv.Quote(webhookFile)+`; channel = "#ai-infrastructure"; };
	  email = { to = [ "maintainers@example.com" ]; from = "alertmanager@ipex.test"; smarthost = `+strconv.Quote(smtpAddr)+`;
	            authUsername = "alerts"; authPasswordFile = `+strconv.Quote(passwordFile)+`; requireTLS = false; };
	  groupWait = "100ms";
	}`, &config)
	raw, err := json.MarshalIndent(config, "", "  ")
	require.NoError(t, err)
	cfgText := string(raw) // JSON is YAML
	assert.NotContains(t, cfgText, webhookSecret, "the webhook URL stays in its file")
	assert.NotContains(t, cfgText, smtpPassword, "the SMTP password stays in its file")

	cfgFile := filepath.Join(t.TempDir(), "alertmanager.yml")
	require.NoError(t, os.WriteFile(cfgFile, raw, 0o600))
	out, err := exec.CommandContext(t.Context(), "amtool", "check-config", cfgFile).CombinedOutput()
	require.NoError(t, err, "%s", out)

	base, log := startAlertmanager(t, cfgText)
	alert := `[{"labels":{"alertname":"IpexServiceDown","service":"ollama","instance":"host:9835","severity":"critical"},
	           "annotations":{"summary":"ollama on host:9835 does not answer"}}]`
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/api/v2/alerts", strings.NewReader(alert))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	deadline := time.After(60 * time.Second)
	select {
	case body := <-slackGot:
		assert.Contains(t, string(body), "IpexServiceDown")
		assert.Contains(t, string(body), "#ai-infrastructure")
	case <-deadline:
		t.Fatalf("no Slack post; alertmanager log:\n%s", log.String())
	}
	select {
	case m := <-mails:
		assert.Equal(t, "alerts", m.user)
		assert.Equal(t, smtpPassword, m.password, "the password is read from authPasswordFile")
		assert.Equal(t, "alertmanager@ipex.test", m.from)
		assert.Equal(t, []string{"maintainers@example.com"}, m.to)
		assert.Contains(t, m.data, "IpexServiceDown")
	case <-deadline:
		t.Fatalf("no mail; alertmanager log:\n%s", log.String())
	}
	assert.NotContains(t, log.String(), webhookSecret, "alertmanager's log must not show the webhook URL")
	assert.NotContains(t, log.String(), smtpPassword)
}
