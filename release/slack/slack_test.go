package slack

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/slack-go/slack/slacktest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/golden"
)

const repo = "https://github.com/ipex-flake/ipex-flake"

func TestPayloads(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
	}{
		{"promotion_stable.json", PromotionMessage(Promotion{
			Tag: "v0.2.0", Channel: "stable", Rev: "abcdef0123456789", Previous: "v0.1.0",
			RepoURL: repo, ReleaseURL: repo + "/releases/tag/v0.2.0", ApprovedBy: "alice",
		})},
		{"promotion_dev_local.json", PromotionMessage(Promotion{
			Tag: "v0.1.0-dev.1", Channel: "dev", Rev: "abcdef0123456789", ReleaseURL: "file:///repo/.git/ipex-ci/releases/v0.1.0-dev.1.json",
		})},
		{"stage_failed.json", StageFailedMessage(StageFailure{
			Stage: "integration", Rev: "abcdef0123456789", Description: "2 of 14 tests failed",
			URL: repo + "/actions/runs/1", RepoURL: repo,
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Payload(tt.msg)
			require.NoError(t, err)
			golden.Assert(t, tt.name, append(got, '\n'))
		})
	}
}

// recorder captures chat.postMessage forms on a slacktest server.
type recorder struct {
	mu    sync.Mutex
	forms []url.Values
	auth  []string
	fail  bool
}

func (rec *recorder) bind(c slacktest.Customize) {
	c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "want POST", http.StatusMethodNotAllowed)
			return
		}
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		rec.mu.Lock()
		rec.forms = append(rec.forms, form)
		rec.auth = append(rec.auth, r.Header.Get("Authorization"))
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if rec.fail {
			_, _ = w.Write([]byte(`{"ok":false,"error":"invalid_auth"}`))
			return
		}
		_, _ = w.Write([]byte(`{"ok":true,"channel":"C1","ts":"1.0"}`))
	})
}

// botOn starts a slacktest server that rec answers for, and returns the
// bot notifier FromEnv makes for it with the bot token and the extra
// environment.
func botOn(t *testing.T, rec *recorder, extra map[string]string) Notifier {
	t.Helper()
	s := slacktest.NewTestServer(rec.bind)
	s.Start()
	t.Cleanup(s.Stop)
	env := map[string]string{"SLACK_BOT_TOKEN": "xoxb-secret-token", "SLACK_API_URL": s.GetAPIURL()}
	maps.Copy(env, extra)
	return FromEnv(func(k string) string { return env[k] }, io.Discard)
}

func TestBotWithSlacktest(t *testing.T) {
	rec := &recorder{}
	n := botOn(t, rec, nil)
	require.Equal(t, "slack #ai-infrastructure", n.Target())

	m := PromotionMessage(Promotion{Tag: "v0.2.0", Channel: "stable", Rev: "abcdef0123", RepoURL: repo})
	require.NoError(t, n.Notify(t.Context(), m))
	require.Len(t, rec.forms, 1)
	assert.Equal(t, "#ai-infrastructure", rec.forms[0].Get("channel"))
	assert.Equal(t, m.Text, rec.forms[0].Get("text"))
	assert.Contains(t, rec.auth[0]+" "+rec.forms[0].Get("token"), "xoxb-secret-token", "the bot token goes to Slack")
}

func TestBotFailureIsReportedWithoutToken(t *testing.T) {
	rec := &recorder{fail: true}
	n := botOn(t, rec, map[string]string{"SLACK_CHANNEL": "#releases"})

	var errs Errors
	errs.Notify(t.Context(), n, PromotionMessage(Promotion{Tag: "v0.2.0", Channel: "stable", Rev: "abc"}))
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), "invalid_auth")
	assert.Contains(t, errs[0].Error(), "#releases")
	assert.NotContains(t, errs[0].Error(), "xoxb-secret-token")
}

func TestWebhook(t *testing.T) {
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, http.MethodPost, r.Method)
		assert.Equal(t, "/services/T/B/secret", r.URL.Path)
		got, _ = io.ReadAll(r.Body)
		if bytes.Contains(got, []byte("boom")) {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	hook := srv.URL + "/services/T/B/secret"
	n := FromEnv(func(k string) string { return map[string]string{"SLACK_WEBHOOK_URL": hook}[k] }, io.Discard)
	require.Equal(t, "slack webhook", n.Target())

	m := StageFailedMessage(StageFailure{Stage: "unit", Rev: "abcdef0123"})
	require.NoError(t, n.Notify(t.Context(), m))
	var sent Message
	require.NoError(t, json.Unmarshal(got, &sent))
	assert.Equal(t, m.Text, sent.Text)

	err := n.Notify(t.Context(), Message{Text: "boom"})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "secret", "the webhook URL is a secret")
}

func TestPrinterAndStageFailed(t *testing.T) {
	var out bytes.Buffer
	n := FromEnv(func(string) string { return "" }, &out)
	require.Equal(t, "terminal", n.Target())
	require.NoError(t, StageFailed(t.Context(), n, StageFailure{Stage: "security", Rev: "abcdef0123", Description: "CVE found"}))
	assert.Contains(t, out.String(), "Stage *security* failed on abcdef0")
	assert.Contains(t, out.String(), "CVE found")
}

// TestStageOutputIsEscaped: stage output that tries to notify everyone,
// ping a user or forge a link arrives at Slack as literal text.
func TestStageOutputIsEscaped(t *testing.T) {
	rec := &recorder{}
	n := botOn(t, rec, nil)

	for _, tt := range []struct {
		name, desc, want string
	}{
		{"channel mention", "<!channel> tests failed", "&lt;!channel&gt; tests failed"},
		{"user mention", "blame <@U123>", "blame &lt;@U123&gt;"},
		{"forged link", "see <https://evil.example|the logs>", "see &lt;https://evil.example|the logs&gt;"},
		{"ampersand first", "a && b > c &lt;", "a &amp;&amp; b &gt; c &amp;lt;"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec.forms = nil
			require.NoError(t, StageFailed(t.Context(), n, StageFailure{Stage: "unit<!here>", Rev: "abcdef0123", Description: tt.desc, URL: "https://ci.example/run?a=1&b=2", RepoURL: repo}))
			require.Len(t, rec.forms, 1)
			text := rec.forms[0].Get("text")
			assert.Contains(t, text, "\n"+tt.want)
			assert.Contains(t, text, "<https://ci.example/run?a=1&amp;b=2|unit&lt;!here&gt;>", "our own link stays a link")
			assert.NotContains(t, text, "<!channel>")
			assert.NotContains(t, text, "<!here>")
			assert.NotContains(t, text, "<@U123>")
			assert.NotContains(t, text, "<https://evil.example")
		})
	}
	assert.Equal(t, "Approved by: a &lt;!channel&gt;", strings.Split(PromotionMessage(Promotion{Tag: "v1.0.0", Channel: "stable", Rev: "abc", ApprovedBy: "a <!channel>"}).Text, "\n")[3])
}
