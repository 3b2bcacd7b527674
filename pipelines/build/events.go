package build

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"
)

// Nix activity and result types of --log-format internal-json.
const (
	actBuilds       = 104
	actBuild        = 105
	actSubstitute   = 108
	resBuildLogLine = 101
	resProgress     = 105
)

type nixEvent struct {
	Action string            `json:"action"`
	ID     uint64            `json:"id"`
	Level  int               `json:"level"`
	Type   int               `json:"type"`
	Text   string            `json:"text"`
	Msg    string            `json:"msg"`
	RawMsg string            `json:"raw_msg"`
	Fields []json.RawMessage `json:"fields"`
}

// Event is what the build reports to progress while nix runs.
type Event struct {
	Kind    EventKind
	DrvPath string
	Line    string
	Elapsed time.Duration
	// Counts holds nix's own build counters (for Progress events).
	Counts Counts
}

// Counts are nix's counters of derivation builds.
type Counts struct {
	Done, Expected, Running, Failed int
}

// EventKind says what happened to a derivation.
type EventKind int

// Event kinds.
const (
	BuildStarted EventKind = iota
	BuildFinished
	BuildFailed
	BuildLog
	Substituting
	// BuildStopped: nix closed the build's activity. For a derivation that
	// was asked for on the command line this can come long after the build
	// ended (nix keeps the activity until it exits), so the outcome of such
	// derivations is reported after the build, from the store.
	BuildStopped
	// BuildCounts carries nix's counters in Counts.
	BuildCounts
)

// logTailLines is how many log lines of each derivation are kept.
const logTailLines = 25

var drvRe = regexp.MustCompile(`/nix/store/[0-9a-z]{32}-[^'"\s]+\.drv`)

// eventParser reads nix's internal-json log line by line and keeps the
// state the report needs: which derivations failed and why, their log tails
// and build durations.
type eventParser struct {
	// cancelled reports whether the build is being stopped: activities that
	// stop then were interrupted, not finished.
	cancelled func() bool
	now       func() time.Time
	emit      func(Event)
	acts      map[uint64]activity
	// requested are the derivations named on the command line.
	requested map[string]bool
	// buildsID is the id of nix's actBuilds activity, whose counters count
	// derivation builds.
	buildsID uint64
	// Failed maps a derivation to the error of its own build; DepFailed
	// to the error saying its dependencies failed.
	Failed    map[string]string
	DepFailed map[string]string
	Logs      map[string][]string
	// Elapsed is the exact duration of builds that were not requested on
	// the command line (nix stops their activity when they end).
	Elapsed map[string]time.Duration
	// Started and Stopped are the activity's start and stop of requested
	// derivations: the stop can be long after the build's end.
	Started, Stopped map[string]time.Time
	Built            map[string]bool
	Other            []string // error messages not tied to a derivation
	// Builders maps a derivation to the machine that built it (builders.go).
	Builders map[string]string
}

type activity struct {
	drv   string
	start time.Time
}

func newEventParser(emit func(Event), cancelled func() bool, requested []string) *eventParser {
	if emit == nil {
		emit = func(Event) {}
	}
	req := map[string]bool{}
	for _, d := range requested {
		req[d] = true
	}
	return &eventParser{
		now: time.Now, emit: emit, cancelled: cancelled, requested: req,
		acts:      map[uint64]activity{},
		Failed:    map[string]string{},
		DepFailed: map[string]string{},
		Logs:      map[string][]string{},
		Elapsed:   map[string]time.Duration{},
		Built:     map[string]bool{},
		Started:   map[string]time.Time{},
		Stopped:   map[string]time.Time{},
	}
}

// Line handles one line of nix's stderr.
func (p *eventParser) Line(line string) {
	rest, ok := strings.CutPrefix(line, "@nix ")
	if !ok {
		if strings.HasPrefix(line, "error:") {
			p.message(line)
		}
		return
	}
	var ev nixEvent
	if json.Unmarshal([]byte(rest), &ev) != nil {
		return
	}
	switch ev.Action {
	case "start":
		p.start(ev)
	case "stop":
		p.stop(ev)
	case "result":
		p.result(ev)
	case "msg":
		if ev.Level == 0 {
			p.message(ev.Msg)
		}
	}
}

// start opens the activity of a derivation's build or substitution.
func (p *eventParser) start(ev nixEvent) {
	if ev.Type != actBuild && ev.Type != actSubstitute {
		return
	}
	var drv string
	if len(ev.Fields) > 0 {
		_ = json.Unmarshal(ev.Fields[0], &drv)
	}
	if drv == "" {
		return
	}
	p.acts[ev.ID] = activity{drv: drv, start: p.now()}
	if ev.Type == actBuild {
		p.noteBuilder(drv, ev.Fields)
		p.emit(Event{Kind: BuildStarted, DrvPath: drv})
	} else {
		p.emit(Event{Kind: Substituting, DrvPath: drv})
	}
}

// stop closes an activity: a dependency's build ended, built or failed; a
// requested derivation's activity only says when it started and when, at
// the latest, it ended.
func (p *eventParser) stop(ev nixEvent) {
	a, ok := p.acts[ev.ID]
	if !ok {
		return
	}
	delete(p.acts, ev.ID)
	if !strings.HasSuffix(a.drv, ".drv") {
		return
	}
	if p.requested[a.drv] {
		// The activity may have outlived the build (nix stops it when
		// it exits): only its start is exact, and the stop is an upper
		// bound of the end. The outcome comes from the store.
		p.Started[a.drv] = a.start
		p.Stopped[a.drv] = p.now()
		p.emit(Event{Kind: BuildStopped, DrvPath: a.drv})
		return
	}
	el := p.now().Sub(a.start)
	p.Elapsed[a.drv] = el
	if _, failed := p.Failed[a.drv]; failed || p.cancelled() {
		p.emit(Event{Kind: BuildFailed, DrvPath: a.drv, Elapsed: el})
		return
	}
	p.Built[a.drv] = true
	p.emit(Event{Kind: BuildFinished, DrvPath: a.drv, Elapsed: el})
}

// result handles nix's counters and the log lines of a build, whose last
// logTailLines lines are kept.
func (p *eventParser) result(ev nixEvent) {
	if ev.Type == resProgress && len(ev.Fields) == 4 {
		if _, build := p.acts[ev.ID]; !build {
			p.progress(ev)
		}
		return
	}
	if ev.Type != resBuildLogLine || len(ev.Fields) == 0 {
		return
	}
	a, ok := p.acts[ev.ID]
	if !ok {
		return
	}
	var l string
	if json.Unmarshal(ev.Fields[0], &l) != nil {
		return
	}
	l = ansiRe.ReplaceAllString(l, "")
	tail := append(p.Logs[a.drv], l)
	if len(tail) > logTailLines {
		tail = tail[len(tail)-logTailLines:]
	}
	p.Logs[a.drv] = tail
	p.emit(Event{Kind: BuildLog, DrvPath: a.drv, Line: l})
}

// progress handles the counters of the actBuilds activity:
// [done, expected, running, failed].
func (p *eventParser) progress(ev nixEvent) {
	var n [4]int
	for i, f := range ev.Fields {
		if json.Unmarshal(f, &n[i]) != nil {
			return
		}
	}
	if p.buildsID == 0 {
		p.buildsID = ev.ID
	}
	if ev.ID != p.buildsID {
		return // the counters of another activity (copying, substituting)
	}
	p.emit(Event{Kind: BuildCounts, Counts: Counts{Done: n[0], Expected: n[1], Running: n[2], Failed: n[3]}})
}

// message records an error message against the derivation it names first.
// Nix 2.8: "builder for 'X' failed with exit code 1", "1 dependencies of
// derivation 'X' failed to build"; Nix 2.19+: "Cannot build 'X'. Reason: …".
func (p *eventParser) message(msg string) {
	msg = strings.TrimSpace(strings.TrimPrefix(ansiRe.ReplaceAllString(msg, ""), "error:"))
	drv := drvRe.FindString(msg)
	if drv == "" {
		p.Other = append(p.Other, msg)
		return
	}
	// Keep the first line; later lines of newer nix repeat the log tail.
	first := strings.TrimSpace(strings.SplitN(msg, "\n", 2)[0])
	if reason := reasonLine(msg); reason != "" && !strings.Contains(first, "Reason") {
		first += " " + reason
	}
	target := p.Failed
	if isDependencyFailure(msg) {
		target = p.DepFailed
	}
	if _, seen := target[drv]; !seen {
		target[drv] = first
	}
}

func reasonLine(msg string) string {
	for _, l := range strings.Split(msg, "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "Reason:") {
			return t
		}
	}
	return ""
}

// isDependencyFailure recognises nix's "a dependency failed" errors, which
// name the dependent derivation, not the one whose builder failed:
// "1 dependencies of derivation 'X' failed to build" (2.8) and
// "Cannot build 'X'. Reason: 1 dependency failed." (2.19+).
func isDependencyFailure(msg string) bool {
	return strings.Contains(msg, "dependencies of derivation") ||
		strings.Contains(msg, "dependency failed") ||
		strings.Contains(msg, "dependencies failed")
}
