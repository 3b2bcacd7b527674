// Package progress shows what a build is doing: a live view of running
// builds on a terminal, plain lines in CI, and under GitHub Actions folded
// log groups for failures plus a Markdown summary in $GITHUB_STEP_SUMMARY.
package progress

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ipex-flake/ipex-flake/pipelines/build"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// Mode selects how progress is shown.
type Mode int

// Modes.
const (
	// Plain prints one line per step and per finished derivation.
	Plain Mode = iota
	// Live redraws a view of the running builds (interactive terminals).
	Live
	// GitHubActions is Plain plus ::group:: folds and a step summary.
	GitHubActions
)

// Detect picks the mode from the environment and the terminal.
func Detect(getenv func(string) string, tty bool) Mode {
	switch {
	case getenv("GITHUB_ACTIONS") == "true":
		return GitHubActions
	case tty && getenv("CI") == "" && getenv("TERM") != "dumb":
		return Live
	default:
		return Plain
	}
}

// Printer implements build.Progress for one of the modes.
type Printer struct {
	w    io.Writer
	mode Mode
	now  func() time.Time
	// SummaryFile is where GitHubActions mode appends its Markdown summary
	// ($GITHUB_STEP_SUMMARY); empty for none.
	SummaryFile string
	// Width is the terminal's width in Live mode (0: 120): lines are cut
	// to it so the live view redraws cleanly. Reports keep the full text.
	Width int

	mu       sync.Mutex
	start    time.Time
	running  map[string]*running
	done     int
	failed   int
	counts   build.Counts // nix's own counters, when it reports them
	drawn    int          // lines of the live view currently on screen
	lastDraw time.Time
}

type running struct {
	start  time.Time
	last   string
	active time.Time // start, or the latest log line
}

var _ build.Progress = (*Printer)(nil)

// New returns a Printer writing to w.
func New(w io.Writer, mode Mode) *Printer {
	return &Printer{w: w, mode: mode, now: time.Now, start: time.Now(), running: map[string]*running{}}
}

// Name is the derivation name without store directory, hash and ".drv".
func Name(drvPath string) string {
	base := strings.TrimSuffix(filepath.Base(drvPath), ".drv")
	if len(base) > 33 && base[32] == '-' {
		return base[33:]
	}
	return base
}

// Phase implements build.Progress.
func (p *Printer) Phase(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	fmt.Fprintf(p.w, "==> %s\n", msg)
	p.draw(true)
}

// Event implements build.Progress.
func (p *Printer) Event(e build.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	name := Name(e.DrvPath)
	switch e.Kind {
	case build.BuildStarted:
		now := p.now()
		p.running[e.DrvPath] = &running{start: now, active: now}
		if p.mode != Live {
			fmt.Fprintf(p.w, "building %s\n", name)
		}
	case build.Substituting:
		if p.mode != Live {
			fmt.Fprintf(p.w, "fetching %s\n", name)
		}
	case build.BuildLog:
		if r := p.running[e.DrvPath]; r != nil {
			r.last = e.Line
			r.active = p.now()
		}
		if p.mode == Live {
			p.draw(false)
		}
		return
	case build.BuildStopped:
		delete(p.running, e.DrvPath)
	case build.BuildCounts:
		changed := p.counts != e.Counts
		p.counts = e.Counts
		p.draw(changed)
		return
	case build.BuildFinished, build.BuildFailed:
		delete(p.running, e.DrvPath)
		p.done++
		word := "built"
		if e.Kind == build.BuildFailed {
			p.failed++
			word = "FAILED"
		}
		p.clear()
		if d := e.Elapsed.Round(100 * time.Millisecond); d > 0 {
			fmt.Fprintf(p.w, "%s %s (%s)\n", word, name, d)
		} else {
			fmt.Fprintf(p.w, "%s %s\n", word, name)
		}
	}
	p.draw(true)
}

// Tick redraws the live view so that the elapsed time and the timers of
// running builds move while nix is quiet.
func (p *Printer) Tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn > 0 {
		p.draw(true)
	}
}

// TickEvery calls Tick at every value from ticks until ctx ends or ticks
// closes; Live mode runs it with a one-second ticker while a build runs.
func (p *Printer) TickEvery(ctx context.Context, ticks <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ticks:
			if !ok {
				return
			}
			p.Tick()
		}
	}
}

// Ticking starts redrawing the live view every second (Live mode only);
// the returned function stops it.
func (p *Printer) Ticking(ctx context.Context) (stop func()) {
	if p.mode != Live {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	t := time.NewTicker(time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.TickEvery(ctx, t.C)
	}()
	return func() {
		cancel()
		t.Stop()
		<-done
	}
}

// clear erases the live view so permanent lines can be printed.
func (p *Printer) clear() {
	if p.mode != Live || p.drawn == 0 {
		return
	}
	fmt.Fprintf(p.w, "\x1b[%dA\x1b[J", p.drawn)
	p.drawn = 0
}

// draw redraws the live view: a status line and one line per running build
// with its elapsed time and last log line. Log lines redraw at most 10
// times a second.
func (p *Printer) draw(force bool) {
	if p.mode != Live {
		return
	}
	now := p.now()
	if !force && now.Sub(p.lastDraw) < 100*time.Millisecond {
		return
	}
	p.lastDraw = now
	p.clear()
	drvs := make([]string, 0, len(p.running))
	for d := range p.running {
		drvs = append(drvs, d)
	}
	// Most recently active first: nix closes the activity of a requested
	// derivation only when it exits, so a quiet row may have finished.
	sort.Slice(drvs, func(i, j int) bool {
		a, b := p.running[drvs[i]].active, p.running[drvs[j]].active
		if a.Equal(b) {
			return drvs[i] < drvs[j]
		}
		return a.After(b)
	})
	elapsed := now.Sub(p.start).Round(time.Second)
	status := fmt.Sprintf("[%s] %d running, %d done, %d failed", elapsed, len(drvs), p.done, p.failed)
	if c := p.counts; c.Expected > 0 {
		status = fmt.Sprintf("[%s] %d/%d built, %d running, %d failed", elapsed, c.Done, c.Expected, c.Running, c.Failed)
		if len(drvs) > c.Running {
			drvs = drvs[:c.Running]
		}
	}
	const maxRows = 8
	lines := []string{status}
	for i, d := range drvs {
		if i == maxRows {
			lines = append(lines, fmt.Sprintf("  … and %d more", len(drvs)-maxRows))
			break
		}
		r := p.running[d]
		lines = append(lines, truncate(fmt.Sprintf("  %-30s %6s  %s", Name(d), now.Sub(r.start).Round(time.Second), r.last), p.width()))
	}
	for _, l := range lines {
		fmt.Fprintf(p.w, "\x1b[2K%s\n", l)
	}
	p.drawn = len(lines)
}

func (p *Printer) width() int {
	if p.Width > 0 {
		return p.Width
	}
	return 120
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// Finish prints the result of every output; under GitHub Actions it folds
// the log tail of each failure into a ::group:: and appends a Markdown table
// to the step summary.
func (p *Printer) Finish(r *report.Report) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	p.running = map[string]*running{}
	logs := failureLogs(r)
	if p.mode != GitHubActions {
		var b strings.Builder
		b.WriteString(Summary(r))
		for _, l := range logs {
			if len(l.lines) > 0 {
				fmt.Fprintf(&b, "\n--- last log lines of %s ---\n%s\n", l.title, strings.Join(l.lines, "\n"))
			}
		}
		out := b.String()
		if p.mode == Live {
			lines := strings.Split(out, "\n")
			for i, l := range lines {
				lines[i] = truncate(l, p.width())
			}
			out = strings.Join(lines, "\n")
		}
		fmt.Fprint(p.w, out)
		return nil
	}
	fmt.Fprint(p.w, Summary(r))
	for _, l := range logs {
		fmt.Fprintf(p.w, "::error title=%s failed::%s\n", escapeProperty(l.name), escapeData(l.reason))
		fmt.Fprintf(p.w, "::group::%s: last log lines\n", l.title)
		for _, line := range l.lines {
			fmt.Fprintln(p.w, line)
		}
		fmt.Fprintln(p.w, "::endgroup::")
	}
	if p.SummaryFile == "" {
		return nil
	}
	f, err := os.OpenFile(p.SummaryFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("writing the step summary: %w", err)
	}
	defer f.Close()
	_, err = io.WriteString(f, Markdown(r))
	return err
}

// failureLog is one log tail to print: of a failed output, or once of a
// failed dependency with the outputs that need it.
type failureLog struct {
	name, title, reason string
	lines               []string
}

// failureLogs lists the log tails of the failures in report order; a
// dependency that made several outputs fail is listed once, where its
// first dependent is, naming all of them.
func failureLogs(r *report.Report) []failureLog {
	dependents := map[string][]string{}
	for _, o := range r.Outputs {
		if o.Status == report.StatusFailed && o.FailedDependency != "" {
			dependents[o.FailedDependency] = append(dependents[o.FailedDependency], o.Attr)
		}
	}
	var out []failureLog
	done := map[string]bool{}
	for _, o := range r.Outputs {
		switch {
		case o.Status != report.StatusFailed:
		case o.FailedDependency == "":
			out = append(out, failureLog{name: o.Attr, title: o.Attr, reason: o.Reason, lines: o.Log})
		case !done[o.FailedDependency]:
			done[o.FailedDependency] = true
			deps := dependents[o.FailedDependency]
			name := Name(o.FailedDependency)
			out = append(out, failureLog{
				name:   name,
				title:  fmt.Sprintf("%s (needed by %d: %s)", name, len(deps), strings.Join(deps, ", ")),
				reason: fmt.Sprintf("%s failed; %d outputs need it: %s", name, len(deps), strings.Join(deps, ", ")),
				lines:  o.Log,
			})
		}
	}
	return out
}

// Summary is the plain-text result table.
func Summary(r *report.Report) string {
	var b strings.Builder
	width := 0
	for _, o := range r.Outputs {
		width = max(width, len(o.Attr))
	}
	b.WriteString("\n")
	for _, o := range r.Outputs {
		line := fmt.Sprintf("%-8s %-*s  %s", o.Status, width, o.Attr, ShortPaths(firstLine(o.Reason)))
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	fmt.Fprintf(&b, "\n%s\n", Counts(r))
	return b.String()
}

// Counts is the one-line count of outputs per status ("would build" only
// when a dry run found some).
func Counts(r *report.Report) string {
	c := r.Counts()
	s := fmt.Sprintf("%d outputs: %d built, %d present, %d cached, %d failed, %d skipped",
		len(r.Outputs), c[report.StatusBuilt], c[report.StatusPresent], c[report.StatusCached], c[report.StatusFailed], c[report.StatusSkipped])
	if n := c[report.StatusWouldBuild]; n > 0 {
		s += fmt.Sprintf(", %d would build", n)
	}
	return s
}

var statusIcon = map[string]string{
	report.StatusBuilt: "✅ built", report.StatusPresent: "🏠 present", report.StatusCached: "📦 cached",
	report.StatusWouldBuild: "🔨 would build", report.StatusFailed: "❌ failed", report.StatusSkipped: "⏭️ skipped",
}

// duration renders a report duration; unknown ones are left empty.
func duration(ms *int64) string {
	if ms == nil {
		return ""
	}
	return (time.Duration(*ms) * time.Millisecond).Round(100 * time.Millisecond).String()
}

// Markdown is the step summary table.
func Markdown(r *report.Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### ci build `%s` (%s engine)\n\n%s\n\n", r.Flake, r.Engine, Counts(r))
	b.WriteString("| output | status | time | details |\n|---|---|---:|---|\n")
	for _, o := range r.Outputs {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", o.Attr, statusIcon[o.Status],
			duration(o.DurationMs), mdCell(firstLine(o.Reason)))
	}
	b.WriteString("\n")
	return b.String()
}

var storePathRe = regexp.MustCompile(`/nix/store/[0-9a-z]{32}-`)

// ShortPaths drops the store directory and hash from store paths in s
// ("/nix/store/<hash>-hello.drv" → "hello.drv"); reports keep them whole.
func ShortPaths(s string) string { return storePathRe.ReplaceAllString(s, "") }

func firstLine(s string) string { return strings.SplitN(s, "\n", 2)[0] }

func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// escapeData and escapeProperty follow the workflow command encoding.
func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
