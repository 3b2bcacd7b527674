package email

import (
	"io"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testsmtp"
	"github.com/ipex-flake/ipex-flake/release/slack"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		ok      bool
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "not configured", env: nil},
		{name: "STARTTLS", ok: true, env: map[string]string{"SMTP_URL": "smtp://ci:s3cret@mail.example.org", "NOTIFY_EMAIL": "a@example.org, b@example.org"},
			check: func(t *testing.T, c Config) {
				assert.Equal(t, Config{Host: "mail.example.org", Port: 587, Username: "ci", Password: "s3cret",
					From: "ipex-ci@mail.example.org", To: []string{"a@example.org", "b@example.org"}}, c)
			}},
		{name: "implicit TLS", ok: true, env: map[string]string{"SMTP_URL": "smtps://mail.example.org:2465", "NOTIFY_EMAIL": "a@example.org", "NOTIFY_EMAIL_FROM": "rel@example.org"},
			check: func(t *testing.T, c Config) {
				assert.True(t, c.Implicit)
				assert.Equal(t, 2465, c.Port)
				assert.Equal(t, "rel@example.org", c.From)
			}},
		{name: "recipients without server", env: map[string]string{"NOTIFY_EMAIL": "a@example.org"}, wantErr: "need both SMTP_URL"},
		{name: "server without recipients", env: map[string]string{"SMTP_URL": "smtp://mail.example.org"}, wantErr: "NOTIFY_EMAIL"},
		{name: "plain smtp is refused", env: map[string]string{"SMTP_URL": "http://mail.example.org", "NOTIFY_EMAIL": "a@example.org"}, wantErr: "use smtp://"},
		{name: "bad port", env: map[string]string{"SMTP_URL": "smtp://mail.example.org:99999", "NOTIFY_EMAIL": "a@example.org"}, wantErr: "not a port"},
		{name: "bad recipient", env: map[string]string{"SMTP_URL": "smtp://mail.example.org", "NOTIFY_EMAIL": "not an address"}, wantErr: "NOTIFY_EMAIL"},
		{name: "missing CA file", env: map[string]string{"SMTP_URL": "smtp://mail.example.org", "NOTIFY_EMAIL": "a@example.org", "SMTP_CA_FILE": "/nonexistent/ca.pem"}, wantErr: "SMTP_CA_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok, err := ConfigFromEnv(envOf(tt.env))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.NotContains(t, err.Error(), "s3cret")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.ok, ok)
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func promotion() slack.Message {
	return slack.PromotionMessage(slack.Promotion{Tag: "v0.3.0-beta.1", Channel: "beta", Rev: "0123456789abcdef0123456789abcdef01234567",
		Previous: "v0.2.0-beta.2", RepoURL: "https://github.com/ipex-flake/ipex-flake",
		ReleaseURL: "https://github.com/ipex-flake/ipex-flake/releases/tag/v0.3.0-beta.1"})
}

func notifierFor(t *testing.T, srv *testsmtp.Server, scheme, userinfo string) *Notifier {
	t.Helper()
	cfg, ok, err := ConfigFromEnv(envOf(map[string]string{
		"SMTP_URL":     scheme + "://" + userinfo + srv.Addr,
		"NOTIFY_EMAIL": "maintainers@example.com, oncall@example.com",
		"SMTP_CA_FILE": srv.CAFile,
	}))
	require.NoError(t, err)
	require.True(t, ok)
	return New(cfg)
}

// TestNotifySTARTTLS: a real SMTP server on loopback gets one message, over
// STARTTLS, authenticated, to every recipient, with the promotion in it.
func TestNotifySTARTTLS(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{User: "ci", Password: "s3cret"})
	n := notifierFor(t, srv, "smtp", "ci:s3cret@")
	require.NoError(t, n.Notify(t.Context(), promotion()))

	msgs := srv.Messages()
	require.Len(t, msgs, 1)
	m := msgs[0]
	assert.True(t, m.TLS, "sent after STARTTLS")
	assert.Equal(t, "ci", m.User)
	assert.Equal(t, "ipex-ci@127.0.0.1", m.From)
	assert.Equal(t, []string{"maintainers@example.com", "oncall@example.com"}, m.To)
	parsed, err := mail.ReadMessage(strings.NewReader(m.Data))
	require.NoError(t, err)
	assert.Equal(t, "[ipex-flake] v0.3.0-beta.1 released on beta", parsed.Header.Get("Subject"))
	body, err := io.ReadAll(quotedprintable.NewReader(parsed.Body))
	require.NoError(t, err)
	assert.Contains(t, string(body), "v0.3.0-beta.1 (https://github.com/ipex-flake/ipex-flake/releases/tag/v0.3.0-beta.1) released on beta")
	assert.Contains(t, string(body), "Changelog: v0.2.0-beta.2...v0.3.0-beta.1")
	assert.NotContains(t, string(body), "<https://", "Slack link syntax is rewritten")
	assert.NotContains(t, n.Target(), "s3cret")
	assert.Contains(t, n.Target(), "maintainers@example.com")
}

func TestNotifyImplicitTLS(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{Implicit: true})
	n := notifierFor(t, srv, "smtps", "")
	require.NoError(t, n.Notify(t.Context(), promotion()))
	msgs := srv.Messages()
	require.Len(t, msgs, 1)
	assert.True(t, msgs[0].TLS)
}

func TestNotifyFailures(t *testing.T) {
	t.Run("server refuses the recipients", func(t *testing.T) {
		srv := testsmtp.Start(t, testsmtp.Options{RefuseRcpt: true})
		err := notifierFor(t, srv, "smtp", "").Notify(t.Context(), promotion())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "550")
		assert.Empty(t, srv.Messages())
	})
	t.Run("no STARTTLS: nothing is sent in clear", func(t *testing.T) {
		srv := testsmtp.Start(t, testsmtp.Options{NoTLS: true})
		err := notifierFor(t, srv, "smtp", "").Notify(t.Context(), promotion())
		require.Error(t, err)
		assert.Empty(t, srv.Messages())
	})
	t.Run("wrong password", func(t *testing.T) {
		srv := testsmtp.Start(t, testsmtp.Options{User: "ci", Password: "s3cret"})
		err := notifierFor(t, srv, "smtp", "ci:wrong-pass@").Notify(t.Context(), promotion())
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "wrong-pass")
		assert.Empty(t, srv.Messages())
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		srv := testsmtp.Start(t, testsmtp.Options{})
		cfg, _, err := ConfigFromEnv(envOf(map[string]string{"SMTP_URL": "smtp://" + srv.Addr, "NOTIFY_EMAIL": "a@example.org"}))
		require.NoError(t, err)
		require.Error(t, New(cfg).Notify(t.Context(), promotion()))
		assert.Empty(t, srv.Messages())
	})
}

func TestRender(t *testing.T) {
	subject, body := Render(":x: Stage *<https://ci.example/run/1|unit>* failed on <https://github.com/o/r/commit/abc|abc>\nbuild &lt;broke&gt;")
	assert.Equal(t, "[ipex-flake] Stage unit failed on abc", subject)
	assert.True(t, strings.HasPrefix(body, "Stage unit (https://ci.example/run/1) failed on abc (https://github.com/o/r/commit/abc)\nbuild <broke>"), body)
}
