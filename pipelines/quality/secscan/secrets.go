package secscan

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ipex-flake/ipex-flake/internal/childenv"
)

// SecretRule is a pattern for one kind of credential.
type SecretRule struct {
	Name     string
	Re       *regexp.Regexp
	Severity Severity
	// Valid double-checks a match (e.g. the key length) to cut noise.
	Valid func(match string) bool
}

// SecretRules are the credentials the scan looks for.
var SecretRules = []SecretRule{
	{Name: "github-token", Severity: Critical, Re: regexp.MustCompile(`\bgh[pousr]_[A-Za-z0-9]{36,255}\b`)},
	{Name: "github-fine-grained-token", Severity: Critical, Re: regexp.MustCompile(`\bgithub_pat_[A-Za-z0-9_]{82}\b`)},
	// Slack tokens start with the team's numeric id after the prefix
	// (xoxb-1234567890-...); words such as xoxb-secret-token in tests do not.
	{Name: "slack-token", Severity: Critical, Re: regexp.MustCompile(`\bxox[abposr]-[0-9]{8,14}-[0-9A-Za-z-]{8,250}`)},
	{Name: "slack-webhook", Severity: High, Re: regexp.MustCompile(`https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{20,}`)},
	{Name: "aws-access-key-id", Severity: Critical, Re: regexp.MustCompile(`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`)},
	{Name: "aws-secret-access-key", Severity: Critical, Re: regexp.MustCompile(`(?i)aws_?secret_?access_?key["']?\s*[:=]\s*["']?[A-Za-z0-9/+=]{40}\b`)},
	{Name: "private-key", Severity: Critical, Re: regexp.MustCompile(`-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----`)},
	// A Nix signing secret key is name:base64 of 64 bytes (the public key
	// is 32 bytes, so it does not match).
	{Name: "nix-signing-key", Severity: Critical, Re: regexp.MustCompile(`\b[A-Za-z0-9][A-Za-z0-9._-]*:[A-Za-z0-9+/]{86}==`),
		Valid: func(m string) bool {
			_, b64, _ := strings.Cut(m, ":")
			raw, err := base64.StdEncoding.DecodeString(b64)
			return err == nil && len(raw) == 64
		}},
}

// fakeMarkers mark test values that are not real credentials.
var fakeMarkers = []string{"fake", "example", "dummy", "not-a-real", "notreal"}

// Allowed reports whether a match in path is an allowed test value: under
// a testdata directory, and marked fake in the value or its line (or, for
// key files, in the file name).
func Allowed(path, line, value string) bool {
	p := filepath.ToSlash(path)
	if !strings.HasPrefix(p, "testdata/") && !strings.Contains(p, "/testdata/") {
		return false
	}
	for _, s := range []string{value, line, filepath.Base(p)} {
		ls := strings.ToLower(s)
		for _, m := range fakeMarkers {
			if strings.Contains(ls, m) {
				return true
			}
		}
	}
	return false
}

// Redact shows a secret's kind and fingerprint, never its value.
func Redact(value string) string {
	sum := sha256.Sum256([]byte(value))
	return fmt.Sprintf("%d characters, sha256 %x…", len(value), sum[:4])
}

// scanLine returns the secrets on one line of file.
func scanLine(file string, lineNo int, line string) []Finding {
	var out []Finding
	for _, r := range SecretRules {
		for _, m := range r.Re.FindAllString(line, -1) {
			if r.Valid != nil && !r.Valid(m) {
				continue
			}
			if Allowed(file, line, m) {
				continue
			}
			out = append(out, Finding{Scanner: "secrets", Rule: r.Name, Severity: r.Severity, File: file, Line: lineNo,
				Message: "possible " + r.Name + " (" + Redact(m) + ")"})
		}
	}
	return out
}

// skipDirs are never scanned.
var skipDirs = map[string]bool{".git": true, "node_modules": true, "result": true, ".direnv": true}

const maxScanSize = 4 << 20

// ScanTree scans the files under root (text files up to 4 MiB; .git,
// node_modules and result links are skipped). Paths in findings are
// relative to root.
func ScanTree(ctx context.Context, root string) ([]Finding, error) {
	var out []Finding
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.IsDir() {
			if skipDirs[d.Name()] && p != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Size() > maxScanSize {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.IndexByte(data, 0) >= 0 { // binary
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 64<<10), maxScanSize)
		for n := 1; sc.Scan(); n++ {
			out = append(out, scanLine(rel, n, sc.Text())...)
		}
		return nil
	})
	return out, err
}

// ScanHistory scans every line ever added in the git history of root (all
// refs). Findings carry the commit that added the line.
func ScanHistory(ctx context.Context, root string) ([]Finding, error) {
	cmd := exec.CommandContext(ctx, "git", "-C", root, "log", "-p", "--all", "--no-color", "--no-ext-diff",
		"--no-renames", "-U0", "--format=commit %H")
	cmd.Env = childenv.Environ()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	out := parseHistory(stdout)
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		return out, fmt.Errorf("git log: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func parseHistory(r io.Reader) []Finding {
	var out []Finding
	var commit, file string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxScanSize)
	seen := map[string]bool{}
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "commit "):
			commit = strings.TrimPrefix(l, "commit ")
		case strings.HasPrefix(l, "+++ "):
			file = strings.TrimPrefix(strings.TrimPrefix(l, "+++ "), "b/")
		case strings.HasPrefix(l, "+"):
			for _, f := range scanLine(file, 0, l[1:]) {
				key := f.Rule + f.File + f.Message
				if seen[key] { // report the first (newest) commit only
					continue
				}
				seen[key] = true
				f.Commit = commit
				f.Scanner = "secrets-history"
				out = append(out, f)
			}
		}
	}
	return out
}
