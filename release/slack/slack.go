// Package slack sends release notifications through slack-go: a bot token
// and channel (default #ai-infrastructure), an incoming webhook, or — with
// neither configured — the terminal. A message goes out per promotion and
// per failed stage, with version, channel, commit and changelog links.
package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/ipex-flake/ipex-flake/internal/shorthash"
)

// DefaultChannel is where the bot posts unless SLACK_CHANNEL says otherwise.
const DefaultChannel = "#ai-infrastructure"

// Message is what gets posted (the incoming-webhook payload shape).
type Message = slack.WebhookMessage

// Notifier posts a message.
type Notifier interface {
	Notify(ctx context.Context, m Message) error
	// Target describes where messages go, without secrets.
	Target() string
}

// Promotion describes a finished promotion.
type Promotion struct {
	Tag, Channel, Rev string
	// Previous is the channel's previous release tag ("" for the first).
	Previous   string
	RepoURL    string
	ReleaseURL string
	ApprovedBy string
}

// StageFailure describes a failed stage.
type StageFailure struct {
	Stage, Rev, Description, URL string
	RepoURL                      string
}

// PromotionMessage renders the message of a promotion.
func PromotionMessage(p Promotion) Message {
	var b strings.Builder
	fmt.Fprintf(&b, ":rocket: *%s* released on *%s*", link(p.ReleaseURL, p.Tag), Escape(p.Channel))
	fmt.Fprintf(&b, "\nCommit: %s", commitLink(p.RepoURL, p.Rev))
	if p.Previous != "" {
		fmt.Fprintf(&b, "\nChangelog: %s", link(compareURL(p.RepoURL, p.Previous, p.Tag), p.Previous+"..."+p.Tag))
	} else {
		fmt.Fprintf(&b, "\nChangelog: first %s release", p.Channel)
	}
	if p.ApprovedBy != "" {
		fmt.Fprintf(&b, "\nApproved by: %s", Escape(p.ApprovedBy))
	}
	return Message{Text: b.String()}
}

// StageFailedMessage renders the message of a failed stage.
func StageFailedMessage(f StageFailure) Message {
	var b strings.Builder
	fmt.Fprintf(&b, ":x: Stage *%s* failed on %s", link(f.URL, f.Stage), commitLink(f.RepoURL, f.Rev))
	if f.Description != "" {
		// Stage output: escaped, so that it cannot mention <!channel>,
		// ping people or forge a link.
		fmt.Fprintf(&b, "\n%s", Escape(f.Description))
	}
	return Message{Text: b.String()}
}

func commitLink(repo, sha string) string {
	if repo == "" {
		return shorthash.Commit(sha)
	}
	return link(strings.TrimSuffix(repo, "/")+"/commit/"+sha, shorthash.Commit(sha))
}

func compareURL(repo, from, to string) string {
	if repo == "" {
		return ""
	}
	return strings.TrimSuffix(repo, "/") + "/compare/" + from + "..." + to
}

// link is Slack's <url|text> with both parts escaped.
func link(url, text string) string {
	text = Escape(text)
	if url == "" || strings.HasPrefix(url, "file://") {
		return text
	}
	return "<" + Escape(url) + "|" + text + ">"
}

// Escape makes text literal in a Slack message: &, < and > become &amp;,
// &lt; and &gt; (Slack's own escaping), so that text from stage output or
// the environment cannot mention <!channel>, <@user> or forge a <url|link>.
func Escape(text string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(text)
}

// Bot posts with a bot token to a channel.
type Bot struct {
	Client  *slack.Client
	Channel string
}

// Notify implements Notifier.
func (b *Bot) Notify(ctx context.Context, m Message) error {
	opts := []slack.MsgOption{slack.MsgOptionText(m.Text, false)}
	if m.Blocks != nil {
		opts = append(opts, slack.MsgOptionBlocks(m.Blocks.BlockSet...))
	}
	if _, _, err := b.Client.PostMessageContext(ctx, b.Channel, opts...); err != nil {
		return fmt.Errorf("slack: post to %s: %w", b.Channel, err)
	}
	return nil
}

// Target implements Notifier.
func (b *Bot) Target() string { return "slack " + b.Channel }

// Webhook posts to an incoming webhook.
type Webhook struct {
	URL  string
	HTTP *http.Client
}

// Notify implements Notifier. The error never contains the webhook URL
// (it is a secret).
func (w *Webhook) Notify(ctx context.Context, m Message) error {
	if err := slack.PostWebhookCustomHTTPContext(ctx, w.URL, w.HTTP, &m); err != nil {
		return fmt.Errorf("slack webhook: %s", strings.ReplaceAll(err.Error(), w.URL, "<webhook>"))
	}
	return nil
}

// Target implements Notifier.
func (w *Webhook) Target() string { return "slack webhook" }

// Printer writes messages to the terminal.
type Printer struct{ Out io.Writer }

// Notify implements Notifier.
func (p *Printer) Notify(_ context.Context, m Message) error {
	_, err := fmt.Fprintf(p.Out, "slack message (no SLACK_BOT_TOKEN or SLACK_WEBHOOK_URL set):\n%s\n", m.Text)
	return err
}

// Target implements Notifier.
func (p *Printer) Target() string { return "terminal" }

// FromEnv chooses the notifier from SLACK_BOT_TOKEN (+ SLACK_CHANNEL,
// SLACK_API_URL), SLACK_WEBHOOK_URL, or the terminal.
func FromEnv(getenv func(string) string, out io.Writer) Notifier {
	hc := &http.Client{Timeout: 30 * time.Second}
	if tok := getenv("SLACK_BOT_TOKEN"); tok != "" {
		ch := getenv("SLACK_CHANNEL")
		if ch == "" {
			ch = DefaultChannel
		}
		opts := []slack.Option{slack.OptionHTTPClient(hc)}
		if u := getenv("SLACK_API_URL"); u != "" {
			opts = append(opts, slack.OptionAPIURL(u))
		}
		return &Bot{Client: slack.New(tok, opts...), Channel: ch}
	}
	if u := getenv("SLACK_WEBHOOK_URL"); u != "" {
		return &Webhook{URL: u, HTTP: hc}
	}
	return &Printer{Out: out}
}

// Payload returns the JSON of m as posted to a webhook (for golden tests
// and dry runs).
func Payload(m Message) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(b.String(), "\n")), nil
}

// Errors collects notification failures: a failed message is reported and
// never fails the work that triggered it.
type Errors []error

// Notify sends m through n and records a failure instead of returning it.
func (e *Errors) Notify(ctx context.Context, n Notifier, m Message) {
	if err := n.Notify(ctx, m); err != nil {
		*e = append(*e, err)
	}
}

// StageFailed sends the message of a failed stage; the error is for
// reporting only and must not fail the stage run further.
func StageFailed(ctx context.Context, n Notifier, f StageFailure) error {
	return n.Notify(ctx, StageFailedMessage(f))
}
