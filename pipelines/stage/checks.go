package stage

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Collector gathers per-check results for a stage and prints each one as it
// lands. It is safe for concurrent use. Stages embed it to be Checkers.
type Collector struct {
	// Out receives one line per check ("" lines are not printed when nil).
	Out io.Writer
	mu  sync.Mutex
	cs  []Check
}

// Add records c and prints it.
func (c *Collector) Add(ch Check) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cs = append(c.cs, ch)
	if c.Out != nil {
		line := fmt.Sprintf("  %-8s %s", ch.State, ch.Name)
		if ch.Severity != "" {
			line += " [" + ch.Severity + "]"
		}
		if ch.Duration > 0 {
			line += fmt.Sprintf(" (%s)", ch.Duration.Round(time.Millisecond))
		}
		if ch.Detail != "" {
			line += ": " + ch.Detail
		}
		fmt.Fprintln(c.Out, line)
	}
}

// Pass, Fail and SkipCheck record a check in that state.
func (c *Collector) Pass(name, detail string, d time.Duration) {
	c.Add(Check{Name: name, State: Passed, Detail: detail, Duration: d})
}

// Fail records a failed check.
func (c *Collector) Fail(name, detail string, d time.Duration) {
	c.Add(Check{Name: name, State: Failed, Detail: detail, Duration: d})
}

// SkipCheck records a check that could not run, with the reason.
func (c *Collector) SkipCheck(name, reason string) {
	c.Add(Check{Name: name, State: Skipped, Detail: reason})
}

// Checks implements Checker.
func (c *Collector) Checks() []Check {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Check(nil), c.cs...)
}

// Err summarises the collected checks: an error naming the failed checks,
// a Skip when every check was skipped, nil when at least one passed and
// none failed.
func (c *Collector) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var failed, skipped []string
	for _, ch := range c.cs {
		switch ch.State {
		case Failed:
			failed = append(failed, ch.Name)
		case Skipped:
			skipped = append(skipped, ch.Name+": "+ch.Detail)
		}
	}
	switch {
	case len(failed) > 0:
		return fmt.Errorf("%d of %d checks failed: %s", len(failed), len(c.cs), strings.Join(failed, ", "))
	case len(c.cs) == 0:
		return Skip("nothing to check")
	case len(skipped) == len(c.cs):
		return Skip(strings.Join(skipped, "; "))
	}
	return nil
}
