// Package email sends release and stage notifications by email through
// go-mail, beside Slack: every event that goes to Slack can also go to a
// list of addresses. It is configured from the environment only:
//
//	SMTP_URL          smtp://[user[:password]@]host[:port]   STARTTLS, required (port 587 by default)
//	                  smtps://[user[:password]@]host[:port]  TLS from the first byte (port 465 by default)
//	NOTIFY_EMAIL      comma-separated recipients
//	NOTIFY_EMAIL_FROM sender (default ipex-ci@<SMTP host>)
//	SMTP_CA_FILE      PEM file of extra CAs to trust (a private mail relay)
//
// The password (in SMTP_URL) is a secret: it is never printed; Target names
// the server and the recipients only.
package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/ipex-flake/ipex-flake/release/slack"
)

// Config is where mail goes.
type Config struct {
	Host     string
	Port     int
	Implicit bool // TLS from the first byte (smtps); else STARTTLS, required
	Username string
	Password string
	From     string
	To       []string
	// RootCAs trusts extra CAs (nil: the system's).
	RootCAs *x509.CertPool
	Timeout time.Duration
}

// ConfigFromEnv reads SMTP_URL, NOTIFY_EMAIL, NOTIFY_EMAIL_FROM and
// SMTP_CA_FILE. ok is false when email is not configured (no SMTP_URL and no
// NOTIFY_EMAIL); a half or wrong configuration is an error naming the fix.
func ConfigFromEnv(getenv func(string) string) (cfg Config, ok bool, err error) {
	raw, rcpts := getenv("SMTP_URL"), getenv("NOTIFY_EMAIL")
	if raw == "" && rcpts == "" {
		return Config{}, false, nil
	}
	if raw == "" || rcpts == "" {
		return Config{}, false, errors.New("email notifications need both SMTP_URL (smtp://user:password@host:587 or smtps://host:465) and NOTIFY_EMAIL (comma-separated recipients)")
	}
	u, perr := url.Parse(raw)
	if perr != nil || u.Host == "" {
		return Config{}, false, errors.New("SMTP_URL is not a URL: use smtp://user:password@host:587 (STARTTLS) or smtps://user:password@host:465 (TLS)")
	}
	switch u.Scheme {
	case "smtp":
		cfg.Port = 587
	case "smtps":
		cfg.Port, cfg.Implicit = 465, true
	default:
		return Config{}, false, fmt.Errorf("SMTP_URL scheme %q: use smtp:// (STARTTLS) or smtps:// (TLS)", u.Scheme)
	}
	cfg.Host = u.Hostname()
	if p := u.Port(); p != "" {
		n, perr := strconv.Atoi(p)
		if perr != nil || n <= 0 || n > 65535 {
			return Config{}, false, fmt.Errorf("SMTP_URL port %q is not a port number", p)
		}
		cfg.Port = n
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	for _, r := range strings.Split(rcpts, ",") {
		if r = strings.TrimSpace(r); r != "" {
			cfg.To = append(cfg.To, r)
		}
	}
	cfg.From = getenv("NOTIFY_EMAIL_FROM")
	if cfg.From == "" {
		cfg.From = "ipex-ci@" + cfg.Host
	}
	if f := getenv("SMTP_CA_FILE"); f != "" {
		pem, rerr := os.ReadFile(f)
		if rerr != nil {
			return Config{}, false, fmt.Errorf("SMTP_CA_FILE: %w", rerr)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return Config{}, false, fmt.Errorf("SMTP_CA_FILE %s holds no PEM certificate", f)
		}
	}
	// Check the addresses now, so a typo is a configuration error (exit 2)
	// rather than a failed notification after a release.
	m := mail.NewMsg()
	if err := m.From(cfg.From); err != nil {
		return Config{}, false, fmt.Errorf("NOTIFY_EMAIL_FROM %q: %w", cfg.From, err)
	}
	if err := m.To(cfg.To...); err != nil {
		return Config{}, false, fmt.Errorf("NOTIFY_EMAIL: %w", err)
	}
	return cfg, true, nil
}

// Notifier sends each message as one email to the configured recipients.
type Notifier struct {
	cfg Config
}

var _ slack.Notifier = (*Notifier)(nil)

// New returns a notifier for cfg.
func New(cfg Config) *Notifier {
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &Notifier{cfg: cfg}
}

// Target implements slack.Notifier; it names no secret.
func (n *Notifier) Target() string {
	return fmt.Sprintf("email to %s via %s:%d", strings.Join(n.cfg.To, ", "), n.cfg.Host, n.cfg.Port)
}

// Notify implements slack.Notifier: the Slack text becomes the email, its
// first line the subject.
func (n *Notifier) Notify(ctx context.Context, msg slack.Message) error {
	subject, body := Render(msg.Text)
	m := mail.NewMsg()
	if err := m.From(n.cfg.From); err != nil {
		return err
	}
	if err := m.To(n.cfg.To...); err != nil {
		return err
	}
	m.Subject(subject)
	m.SetDate()
	m.SetMessageID()
	m.SetBodyString(mail.TypeTextPlain, body)

	opts := []mail.Option{
		mail.WithPort(n.cfg.Port),
		mail.WithTimeout(n.cfg.Timeout),
		mail.WithTLSConfig(&tls.Config{ServerName: n.cfg.Host, RootCAs: n.cfg.RootCAs, MinVersion: tls.VersionTLS12}),
	}
	if n.cfg.Implicit {
		opts = append(opts, mail.WithSSL())
	} else {
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if n.cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(n.cfg.Username), mail.WithPassword(n.cfg.Password))
	}
	c, err := mail.NewClient(n.cfg.Host, opts...)
	if err != nil {
		return fmt.Errorf("email: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return fmt.Errorf("email via %s:%d: %w", n.cfg.Host, n.cfg.Port, err)
	}
	return nil
}

var (
	slackLink = regexp.MustCompile(`<([^|<>]+)\|([^<>]+)>`)
	bareLink  = regexp.MustCompile(`<(https?://[^|<>]+)>`)
	emoji     = regexp.MustCompile(`^:[a-z_]+:\s*`)
)

// Render turns a Slack message into a subject and a plain-text body: links
// `<url|text>` become `text (url)`, *bold* loses its stars, the leading emoji
// goes.
func Render(text string) (subject, body string) {
	t := slackLink.ReplaceAllString(text, "$2 ($1)")
	t = bareLink.ReplaceAllString(t, "$1")
	t = strings.ReplaceAll(t, "*", "")
	t = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(t)
	lines := strings.Split(t, "\n")
	subject = emoji.ReplaceAllString(lines[0], "")
	subject = slackLink.ReplaceAllString(subject, "$2")
	if i := strings.Index(subject, " ("); i > 0 && strings.Contains(subject[i:], "://") {
		// The subject keeps the link text only.
		subject = stripURLs(subject)
	}
	return "[ipex-flake] " + subject, emoji.ReplaceAllString(t, "") + "\n"
}

var urlInParens = regexp.MustCompile(`\s\((https?://[^)]+)\)`)

func stripURLs(s string) string { return urlInParens.ReplaceAllString(s, "") }
