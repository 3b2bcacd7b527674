// Package childenv builds the environment of every child process the
// pipeline starts: an allow-list of the parent's variables (PATH, HOME,
// TMPDIR, locale, TZ, Nix settings, CA bundles) plus what the caller passes
// on purpose. Credentials reach a child only when the caller names them.
package childenv

import (
	"os"
	"slices"
	"strings"
)

// allowed are the variables a child inherits by name.
var allowed = map[string]bool{
	"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true,
	"TMPDIR": true, "TMP": true, "TEMP": true, "TERM": true, "TZ": true,
	"LANG": true, "LANGUAGE": true,
	"SSL_CERT_FILE": true, "SSL_CERT_DIR": true, "NIX_SSL_CERT_FILE": true,
	"XDG_CACHE_HOME": true, "XDG_CONFIG_HOME": true, "XDG_DATA_HOME": true, "XDG_STATE_HOME": true,
	"XDG_RUNTIME_DIR": true,
	// Go toolchain settings, for the go test children of the stages.
	"GOPATH": true, "GOCACHE": true, "GOMODCACHE": true, "GOFLAGS": true, "GOPROXY": true,
	"GONOSUMDB": true, "GONOPROXY": true, "GOPRIVATE": true, "GOSUMDB": true, "GOTOOLCHAIN": true,
	"CGO_ENABLED": true, "GOROOT": true,
	// Where nix's S3 client finds its credentials (files, profiles, the
	// instance role); the keys themselves are secrets a command names.
	"AWS_PROFILE": true, "AWS_REGION": true, "AWS_DEFAULT_REGION": true,
	"AWS_CONFIG_FILE": true, "AWS_SHARED_CREDENTIALS_FILE": true,
	// Git identity and configuration location (never credentials).
	"GIT_AUTHOR_NAME": true, "GIT_AUTHOR_EMAIL": true, "GIT_AUTHOR_DATE": true,
	"GIT_COMMITTER_NAME": true, "GIT_COMMITTER_EMAIL": true, "GIT_COMMITTER_DATE": true,
	"GIT_CONFIG_NOSYSTEM": true, "GIT_CONFIG_GLOBAL": true, "GIT_TERMINAL_PROMPT": true,
	// Test-runner markers that change what tests do, never credentials.
	"CI": true, "GITHUB_ACTIONS": true,
}

// secretNix are NIX_* variables that hold credentials: they never pass
// by prefix, only when the caller names them.
var secretNix = map[string]bool{
	"NIX_SIGNING_KEY":      true,
	"NIX_SIGNING_KEY_FILE": true,
	"NIX_ACCESS_TOKENS":    true,
}

// Secrets are the credential variables the pipeline knows. They never
// reach a child unless passed on purpose; tests check for each.
var Secrets = []string{
	"NIX_SIGNING_KEY", "NIX_SIGNING_KEY_FILE", "CACHIX_AUTH_TOKEN", "GITHUB_TOKEN", "GH_TOKEN",
	"SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL", "SMTP_URL", "ATTIC_TOKEN",
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
}

// Allowed reports whether the variable key passes from the parent to a
// child by itself.
func Allowed(key string) bool {
	if allowed[key] || strings.HasPrefix(key, "LC_") {
		return true
	}
	if strings.HasPrefix(key, "NIX_") {
		return !secretNix[key] && !strings.Contains(key, "TOKEN") && !strings.Contains(key, "SECRET") &&
			!strings.Contains(key, "KEY") && !strings.Contains(key, "PASSWORD")
	}
	return false
}

// Filter returns the entries of environ ("KEY=value") that Allowed passes,
// in order.
// An inherited NIX_CONFIG loses its access-tokens lines: a token reaches
// nix only when the command passes it as a secret.
func Filter(environ []string) []string {
	var out []string
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !Allowed(k) {
			continue
		}
		if k == "NIX_CONFIG" {
			kv = k + "=" + StripTokens(v)
		}
		out = append(out, kv)
	}
	return out
}

// StripTokens removes the access-tokens settings from nix configuration
// text.
func StripTokens(conf string) string {
	lines := strings.Split(conf, "\n")
	kept := lines[:0]
	for _, l := range lines {
		f := strings.TrimSpace(l)
		f = strings.TrimPrefix(f, "extra-")
		if strings.HasPrefix(f, "access-tokens") {
			continue
		}
		kept = append(kept, l)
	}
	return strings.Join(kept, "\n")
}

// Environ is the allow-listed environment of this process followed by
// extra ("KEY=value", later entries win as exec.Cmd keeps the last).
func Environ(extra ...string) []string {
	return append(Filter(os.Environ()), extra...)
}

// Lookup returns the value of key in environ (the last one wins).
func Lookup(environ []string, key string) (string, bool) {
	for _, kv := range slices.Backward(environ) {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v, true
		}
	}
	return "", false
}
