package childenv

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFilter(t *testing.T) {
	in := []string{
		"PATH=/bin", "HOME=/root", "TMPDIR=/tmp", "LANG=C.UTF-8", "LC_ALL=C", "TZ=UTC",
		"NIX_PATH=nixpkgs=x", "NIX_REMOTE=daemon", "NIX_SSL_CERT_FILE=/etc/ssl/ca.pem", "SSL_CERT_FILE=/etc/ssl/ca.pem",
		"NIX_CONFIG=substituters =\naccess-tokens = github.com=ghp_x\nextra-access-tokens = a=b\nmax-jobs = 2",
		"NIX_SIGNING_KEY=k:secret", "NIX_SIGNING_KEY_FILE=/run/k", "NIX_ACCESS_TOKENS=x", "NIX_SOMETHING_TOKEN=y",
		"CACHIX_AUTH_TOKEN=c", "GITHUB_TOKEN=g", "SLACK_BOT_TOKEN=s", "SLACK_WEBHOOK_URL=w", "SMTP_URL=m",
		"AWS_SECRET_ACCESS_KEY=a", "RANDOM_APP_SETTING=r", "malformed",
	}
	assert.Equal(t, []string{
		"PATH=/bin", "HOME=/root", "TMPDIR=/tmp", "LANG=C.UTF-8", "LC_ALL=C", "TZ=UTC",
		"NIX_PATH=nixpkgs=x", "NIX_REMOTE=daemon", "NIX_SSL_CERT_FILE=/etc/ssl/ca.pem", "SSL_CERT_FILE=/etc/ssl/ca.pem",
		"NIX_CONFIG=substituters =\nmax-jobs = 2",
	}, Filter(in))
	for _, s := range Secrets {
		assert.False(t, Allowed(s), s)
	}
}

func TestEnviron(t *testing.T) {
	t.Setenv("GITHUB_TOKEN", "ghs_x")
	t.Setenv("LC_TIME", "C")
	env := Environ("EXTRA=1")
	_, has := Lookup(env, "GITHUB_TOKEN")
	assert.False(t, has)
	v, _ := Lookup(env, "LC_TIME")
	assert.Equal(t, "C", v)
	v, _ = Lookup(env, "EXTRA")
	assert.Equal(t, "1", v)
}
