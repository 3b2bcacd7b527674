// Package report holds the build report written by `ci build --report` and
// read by `ci push` and the release commands, and its JUnit rendering.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/atomicfile"
)

// Output statuses.
const (
	// StatusBuilt: built by this run.
	StatusBuilt = "built"
	// StatusPresent: already valid in the local store; nothing was built.
	StatusPresent = "present"
	// StatusCached: the binary cache has it; nothing was built or fetched.
	StatusCached = "cached"
	// StatusFailed: evaluation or build failed (see Reason).
	StatusFailed = "failed"
	// StatusSkipped: not built here (see Reason).
	StatusSkipped = "skipped"
	// StatusWouldBuild: a dry run found it neither cached nor present.
	StatusWouldBuild = "would build"
)

// Statuses lists every status in report order.
var Statuses = []string{StatusBuilt, StatusPresent, StatusCached, StatusWouldBuild, StatusFailed, StatusSkipped}

// Available reports whether the output's paths exist after the run: built
// or present in the local store, or held by the binary cache.
func (o Output) Available() bool {
	return (o.Status == StatusBuilt || o.Status == StatusPresent || o.Status == StatusCached) && len(o.OutPaths) > 0
}

// Local reports whether the output's paths are in the local store (built by
// this run or already present), so they can be pushed from it.
func (o Output) Local() bool {
	return (o.Status == StatusBuilt || o.Status == StatusPresent) && len(o.OutPaths) > 0
}

// Output is the result for one flake output.
type Output struct {
	Attr     string   `json:"attr"`
	System   string   `json:"system"`
	DrvPath  string   `json:"drvPath,omitempty"`
	OutPaths []string `json:"outPaths,omitempty"`
	Status   string   `json:"status"`
	// DurationMs is the build's own duration, from nix's start of the
	// build to its end (the activity's stop or the output's registration in
	// the store); nil when it is not known, e.g. nothing was built.
	DurationMs *int64 `json:"durationMs,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// FailedDependency is the derivation whose own build failed and made
	// this output fail ("" when the output's own build failed).
	FailedDependency string `json:"failedDependency,omitempty"`
	// Log is the tail of the build log of a failed output (for a failed
	// dependency, that dependency's log).
	Log []string `json:"log,omitempty"`
	// Builder is the machine that built the output: "local", or the URI of
	// a Nix remote builder.
	Builder string `json:"builder,omitempty"`
}

// Report is the JSON document of one `ci build` run.
type Report struct {
	Flake   string   `json:"flake"`
	Engine  string   `json:"engine"`
	Rev     string   `json:"rev,omitempty"`
	Cache   string   `json:"cache,omitempty"`
	Outputs []Output `json:"outputs"`

	// Staging is the cache `ci build --push-to` uploaded the built outputs to.
	Staging string `json:"staging,omitempty"`
}

// Counts returns the number of outputs per status.
func (r *Report) Counts() map[string]int {
	c := map[string]int{}
	for _, o := range r.Outputs {
		c[o.Status]++
	}
	return c
}

// Ms returns a pointer to d in milliseconds, for Output.DurationMs.
func Ms(d time.Duration) *int64 {
	ms := d.Milliseconds()
	return &ms
}

// Sort orders outputs by attribute path.
func (r *Report) Sort() {
	sort.Slice(r.Outputs, func(i, j int) bool { return r.Outputs[i].Attr < r.Outputs[j].Attr })
}

// Write writes the report as indented JSON, atomically.
func (r *Report) Write(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o644)
}

// Read reads a report written by Write.
func Read(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s is not a build report: %w", path, err)
	}
	return &r, nil
}
