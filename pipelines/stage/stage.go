// Package stage runs the test stages of the pipeline. A stage is one small
// interface (a name and Run); optional interfaces (Defaulter, Requirer,
// Skipper, Checker) are applied by the wrapper in Run, not inside each stage.
// The stages themselves, their order, time limits and requirements live in
// one table (Table), which `ci test` and `ci matrix` both read.
package stage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Stage is one test stage.
type Stage interface {
	// Name is the stage name: unit, integration, performance or security.
	Name() string
	// Run runs the stage. It returns nil when the stage passed, a Skip error
	// when it could not run, any other error when it failed. Run must stop
	// (and stop what it started) when ctx is done.
	Run(ctx context.Context) error
}

// Defaulter is a stage that fills in its default settings (and checks its
// configuration) before it runs. An error from Default is a configuration
// error: the stage did not start.
type Defaulter interface {
	Default() error
}

// Requirer is a stage that needs machine features beyond those its table
// entry lists (stages outside the table, and tests).
type Requirer interface {
	Requires() []Feature
}

// Skipper is a stage that can tell, before running, that it has nothing to
// do here. A non-empty reason skips the stage.
type Skipper interface {
	SkipReason() string
}

// Checker is a stage that reports a result per check (flake check,
// per-check builds, scanners). The wrapper copies them into the Outcome.
type Checker interface {
	Checks() []Check
}

// SkipError is the typed error of a stage (or check) that could not run
// here. It is reported as skipped with its reason, never as passed.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// Skip returns a SkipError with reason, e.g. Skip("no intel-gpu on this machine").
func Skip(reason string) error { return &SkipError{Reason: reason} }

// Skipf returns a SkipError with a formatted reason.
func Skipf(format string, args ...any) error { return Skip(fmt.Sprintf(format, args...)) }

// IsSkip reports whether err is (or wraps) a SkipError, and its reason.
func IsSkip(err error) (string, bool) {
	var s *SkipError
	if errors.As(err, &s) {
		return s.Reason, true
	}
	return "", false
}

// Spec is a stage's entry in the table: its time limit and requirements.
type Spec struct {
	Name    string
	Timeout time.Duration
	// Requires lists the features without which the stage is skipped.
	Requires []Feature
	// Wants lists features that parts of the stage need; without them those
	// parts are skipped with their reason and the rest runs.
	Wants []Feature
	// Summary is one line for --help and docs.
	Summary string
}

// Table is the one list of stages, in the order `ci test --all` runs them.
// Time limits and requirements come from the Phase 4 plan ("Automated
// Testing Pipeline"). `ci matrix` derives runner labels from it.
var Table = []Spec{
	// unit: `nix flake check` and the flake's fast checks; any machine.
	{Name: "unit", Timeout: 30 * time.Minute,
		Summary: "nix flake check and every check that needs no VM, result per check"},
	// integration: the NixOS VM tests (need kvm) and tests/integration
	// against the running Ollama and ComfyUI; on Intel GPU runners.
	{Name: "integration", Timeout: 60 * time.Minute, Requires: []Feature{IntelGPU}, Wants: []Feature{KVM},
		Summary: "NixOS VM tests and tests/integration against Ollama and ComfyUI"},
	// performance: latency, throughput and concurrency against the running
	// services; needs the GPU and at least 16 GiB of memory.
	{Name: "performance", Timeout: 120 * time.Minute, Requires: []Feature{IntelGPU, BigMemory},
		Summary: "latency, throughput and concurrent users, compared with the baseline"},
	// security: secrets, workflows, flake.lock, vulnerabilities, SBOM; any machine.
	{Name: "security", Timeout: 45 * time.Minute,
		Summary: "secret scan, actionlint, flake.lock audit, govulncheck, SBOM, security-scan app"},
}

// Gate returns the stages that must have passed on a commit before it
// goes to the release channel (dev, beta, stable): `ci push` checks the
// dev gate, the release commands every channel's (release/version).
func Gate(channel string) []string {
	switch channel {
	case "dev":
		return []string{"unit"}
	case "beta":
		return []string{"unit", "integration"}
	default:
		return []string{"unit", "integration", "performance", "security"}
	}
}

// Names returns the stage names in table order.
func Names() []string {
	out := make([]string, len(Table))
	for i, s := range Table {
		out[i] = s.Name
	}
	return out
}

// Lookup returns the table entry of a stage.
func Lookup(name string) (Spec, bool) {
	for _, s := range Table {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}
