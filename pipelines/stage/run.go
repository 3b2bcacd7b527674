package stage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Outcome states. TimedOut is a failure whose cause is the time limit.
const (
	Passed   = "passed"
	Failed   = "failed"
	Skipped  = "skipped"
	TimedOut = "timed out"
)

// Check is the result of one check inside a stage.
type Check struct {
	Name string `json:"name"`
	// State is Passed, Failed or Skipped.
	State string `json:"state"`
	// Detail is the reason of a skip, the cause of a failure, or a note.
	Detail   string        `json:"detail,omitempty"`
	Duration time.Duration `json:"duration"`
	// Severity of a security finding ("" elsewhere).
	Severity string `json:"severity,omitempty"`
}

// Outcome is what the wrapper reports for one stage.
type Outcome struct {
	Stage    string
	State    string
	Reason   string
	Duration time.Duration
	Timeout  time.Duration
	Checks   []Check
	// Err is the stage's error (nil when it passed).
	Err error
}

// Description is a one-line summary for a commit status (at most 140
// characters, GitHub's limit).
func (o Outcome) Description() string {
	var d string
	switch o.State {
	case Passed:
		d = "passed"
	case Skipped:
		d = "skipped: " + o.Reason
	case TimedOut:
		d = "timed out after " + o.Timeout.String()
	default:
		d = "failed: " + o.Reason
	}
	if c := CountChecks(o.Checks); c != "" {
		d += " (" + c + ")"
	}
	if len(d) > 140 {
		d = d[:137] + "..."
	}
	return d
}

// CountChecks summarises checks as "3 passed, 1 skipped" ("" for none).
func CountChecks(cs []Check) string {
	if len(cs) == 0 {
		return ""
	}
	n := map[string]int{}
	for _, c := range cs {
		n[c.State]++
	}
	var parts []string
	for _, s := range []string{Passed, Failed, Skipped} {
		if n[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[s], s))
		}
	}
	return strings.Join(parts, ", ")
}

// Options configure the wrapper.
type Options struct {
	// Host detects the machine's features.
	Host Host
	// Timeouts override the table's time limits, by stage name.
	Timeouts map[string]time.Duration
}

// Requirements returns the features s needs: its table entry's, plus those
// it declares as a Requirer.
func Requirements(s Stage) []Feature {
	var fs []Feature
	if spec, ok := Lookup(s.Name()); ok {
		fs = append(fs, spec.Requires...)
	}
	if r, ok := s.(Requirer); ok {
		fs = append(fs, r.Requires()...)
	}
	return fs
}

// TimeoutFor returns the time limit of a stage: the override, else the
// table's, else 30 minutes.
func (o Options) TimeoutFor(name string) time.Duration {
	if d, ok := o.Timeouts[name]; ok && d > 0 {
		return d
	}
	if spec, ok := Lookup(name); ok {
		return spec.Timeout
	}
	return 30 * time.Minute
}

// ErrConfig marks a Defaulter error: the stage's configuration is wrong and
// it did not start.
var ErrConfig = errors.New("stage configuration")

// Run applies the optional interfaces and runs s within its time limit:
// Default, then the requirements (missing → skipped), then SkipReason, then
// Run under a context that is cancelled at the limit (the engine stops the
// commands the stage started, with their children).
func Run(ctx context.Context, s Stage, opts Options) Outcome {
	o := Outcome{Stage: s.Name(), Timeout: opts.TimeoutFor(s.Name())}
	start := time.Now()
	defer func() { o.Duration = time.Since(start) }()
	finish := func(err error) Outcome {
		o.Err = err
		if c, ok := s.(Checker); ok {
			o.Checks = c.Checks()
		}
		o.Duration = time.Since(start)
		return o
	}
	if d, ok := s.(Defaulter); ok {
		if err := d.Default(); err != nil {
			o.State, o.Reason = Failed, err.Error()
			return finish(fmt.Errorf("%w: %w", ErrConfig, err))
		}
	}
	if why := opts.Host.Missing(Requirements(s)); why != "" {
		o.State, o.Reason = Skipped, why
		return finish(Skip(why))
	}
	if sk, ok := s.(Skipper); ok {
		if why := sk.SkipReason(); why != "" {
			o.State, o.Reason = Skipped, why
			return finish(Skip(why))
		}
	}
	rctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	err := s.Run(rctx)
	switch {
	case errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		o.State, o.Reason = TimedOut, fmt.Sprintf("timed out after %s", o.Timeout)
		if err == nil {
			err = context.DeadlineExceeded
		}
		return finish(fmt.Errorf("%s: %w", o.Reason, err))
	case err == nil:
		o.State = Passed
	default:
		if why, ok := IsSkip(err); ok {
			o.State, o.Reason = Skipped, why
		} else {
			o.State, o.Reason = Failed, firstLine(err.Error())
		}
	}
	return finish(err)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
