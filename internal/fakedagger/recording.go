package fakedagger

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Recorded is one command as it ran on a real engine: its arguments and
// what it printed and how it exited.
type Recorded struct {
	Args []string
	ExecResult
}

// Recording is a set of recorded commands keyed by name (see NixCommandKey).
// On disk it is a directory holding, for each name, <name>.args.json,
// <name>.stdout, <name>.stderr and <name>.exit.
type Recording map[string]Recorded

// LoadRecording reads a recording saved with Save.
func LoadRecording(dir string) (Recording, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*.exit"))
	if err != nil {
		return nil, err
	}
	if len(matches) == 0 {
		return nil, fmt.Errorf("fakedagger: no recorded commands (*.exit) in %s", dir)
	}
	rec := Recording{}
	for _, m := range matches {
		name := strings.TrimSuffix(filepath.Base(m), ".exit")
		read := func(ext string) (string, error) {
			b, err := os.ReadFile(filepath.Join(dir, name+ext))
			return string(b), err
		}
		code, err := read(".exit")
		if err != nil {
			return nil, err
		}
		var r Recorded
		if r.ExitCode, err = strconv.Atoi(strings.TrimSpace(code)); err != nil {
			return nil, fmt.Errorf("fakedagger: %s.exit: %w", name, err)
		}
		if r.Stdout, err = read(".stdout"); err != nil {
			return nil, err
		}
		if r.Stderr, err = read(".stderr"); err != nil {
			return nil, err
		}
		args, err := read(".args.json")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if args != "" {
			if err := json.Unmarshal([]byte(args), &r.Args); err != nil {
				return nil, fmt.Errorf("fakedagger: %s.args.json: %w", name, err)
			}
		}
		rec[name] = r
	}
	return rec, nil
}

// Save writes the recording into dir (created if needed), replacing the
// files of the same names.
func (r Recording) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := r[n]
		args, err := json.MarshalIndent(c.Args, "", "  ")
		if err != nil {
			return err
		}
		files := map[string]string{
			".args.json": string(args) + "\n",
			".stdout":    c.Stdout,
			".stderr":    c.Stderr,
			".exit":      strconv.Itoa(c.ExitCode) + "\n",
		}
		for ext, data := range files {
			if err := os.WriteFile(filepath.Join(dir, n+ext), []byte(data), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// NixCommandKey names a nix command line by what it does, so that a
// recording made on one engine answers the same command on another whatever
// its flake path: "version", "config", "builders" (cat of the builders
// file), "discover" (nix eval --json), "eval-error" (nix eval --raw),
// "build", "check-validity", "derivation-graph", "path-info". Other
// commands are named "other".
func NixCommandKey(args []string) string {
	if len(args) == 0 {
		return "other"
	}
	has := func(s string) bool { return slices.Contains(args, s) }
	switch filepath.Base(args[0]) {
	case "cat":
		return "builders"
	case "nix-store":
		if has("--check-validity") {
			return "check-validity"
		}
		return "other"
	case "nix":
	default:
		return "other"
	}
	switch {
	case has("--version"):
		return "version"
	case has("show-config"), has("config"):
		return "config"
	case has("eval") && has("--raw"):
		return "eval-error"
	case has("eval"):
		return "discover"
	case has("build"):
		return "build"
	case has("show-derivation"), has("derivation"):
		return "derivation-graph"
	case has("path-info"):
		return "path-info"
	}
	return "other"
}

// SessionKeys names the commands of one session as recordings do:
// NixCommandKey, numbered from the second run of a kind on
// ("check-validity-2": the build pipeline asks the store once for present
// outputs and once after the build). The zero value is ready; it is safe for
// concurrent use.
type SessionKeys struct {
	mu   sync.Mutex
	seen map[string]int
}

// Key names the command args.
func (k *SessionKeys) Key(args []string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.seen == nil {
		k.seen = map[string]int{}
	}
	base := NixCommandKey(args)
	k.seen[base]++
	if n := k.seen[base]; n > 1 {
		return fmt.Sprintf("%s-%d", base, n)
	}
	return base
}

// RealEngineConfigured reports whether the environment points at a real
// Dagger engine rather than at this fake: tests that need one run only then.
func RealEngineConfigured() bool {
	if os.Getenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST") != "" {
		return true
	}
	return os.Getenv("DAGGER_SESSION_PORT") != "" && os.Getenv("DAGGER_SESSION_TOKEN") != Token
}

// RequireEnv is the variable that makes tests needing a real Dagger engine
// or CLI fail instead of skipping: the Dagger job of the workflow sets it
// to 1, so that it cannot pass by skipping them.
const RequireEnv = "IPEX_FLAKE_REQUIRE_DAGGER"

// SkipUnlessRealEngine skips a test that needs a real engine when none is
// configured, or fails it when RequireEnv is 1. No Dagger engine can run on
// machines without internet (its image and CLI are downloaded), so the skip
// holds under CI=true as well.
func SkipUnlessRealEngine(t testing.TB) {
	t.Helper()
	if !RealEngineConfigured() {
		Skip(t, "no Dagger engine: set _EXPERIMENTAL_DAGGER_RUNNER_HOST (with a dagger CLI on PATH or in _EXPERIMENTAL_DAGGER_CLI_BIN) or DAGGER_SESSION_PORT to run against a real engine")
	}
}

// Skip skips the test with why, or fails it when RequireEnv is 1.
func Skip(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s=1 but %s", RequireEnv, why)
	}
	t.Skip(why)
}
