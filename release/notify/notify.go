// Package notify chooses where notifications go — Slack (or the terminal)
// and, when configured, email — and sends each message to all of them. A
// failed channel is reported with the others still tried; a notification
// never fails the work that triggered it.
package notify

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/ipex-flake/ipex-flake/release/email"
	"github.com/ipex-flake/ipex-flake/release/slack"
)

// Multi sends every message to each notifier.
type Multi []slack.Notifier

var _ slack.Notifier = Multi(nil)

// Notify implements slack.Notifier: every notifier is tried; the failures
// are joined.
func (m Multi) Notify(ctx context.Context, msg slack.Message) error {
	var errs []error
	for _, n := range m {
		if err := n.Notify(ctx, msg); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Target implements slack.Notifier.
func (m Multi) Target() string {
	var ts []string
	for _, n := range m {
		ts = append(ts, n.Target())
	}
	return strings.Join(ts, " and ")
}

// FromEnv returns Slack's notifier (slack.FromEnv: bot, webhook or the
// terminal) plus email when SMTP_URL and NOTIFY_EMAIL are set. A wrong email
// configuration is an error that names the fix.
func FromEnv(getenv func(string) string, out io.Writer) (slack.Notifier, error) {
	s := slack.FromEnv(getenv, out)
	cfg, ok, err := email.ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	if !ok {
		return s, nil
	}
	return Multi{s, email.New(cfg)}, nil
}
