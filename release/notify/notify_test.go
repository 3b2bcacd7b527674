package notify

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testsmtp"
	"github.com/ipex-flake/ipex-flake/release/slack"
)

type failing struct{ sent int }

func (f *failing) Notify(context.Context, slack.Message) error {
	f.sent++
	return errors.New("slack down")
}
func (f *failing) Target() string { return "failing" }

// TestMultiTriesEveryChannel: Slack failing does not stop the email, and
// both failures are reported.
func TestMultiTriesEveryChannel(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{})
	var out bytes.Buffer
	env := map[string]string{"SMTP_URL": "smtp://" + srv.Addr, "NOTIFY_EMAIL": "maintainers@example.com", "SMTP_CA_FILE": srv.CAFile}
	n, err := FromEnv(func(k string) string { return env[k] }, &out)
	require.NoError(t, err)
	multi, ok := n.(Multi)
	require.True(t, ok)
	assert.Equal(t, "terminal and email to maintainers@example.com via 127.0.0.1:"+srv.Port, multi.Target())

	f := &failing{}
	err = Multi{f, multi[1]}.Notify(t.Context(), slack.Message{Text: "v0.1.0 released on dev"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "slack down")
	assert.Equal(t, 1, f.sent)
	assert.Len(t, srv.Messages(), 1, "the email went out although Slack failed")

	require.NoError(t, multi.Notify(t.Context(), slack.Message{Text: "v0.1.0 released on dev"}))
	assert.Contains(t, out.String(), "v0.1.0 released on dev")
	assert.Len(t, srv.Messages(), 2)
}

func TestFromEnv(t *testing.T) {
	n, err := FromEnv(func(string) string { return "" }, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "terminal", n.Target(), "no email without configuration")

	_, err = FromEnv(func(k string) string { return map[string]string{"NOTIFY_EMAIL": "a@example.org"}[k] }, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SMTP_URL")
}
