package build

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"
)

// Nix activity and result types of --log-format internal-json.
const (
	actBuild        = 105
	actSubstitute   = 108
	resBuildLogLine = 101
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
	Failed    map[string]string // drv -> error message
	Logs      map[string][]string
	Elapsed   map[string]time.Duration
	Built     map[string]bool
	Other     []string // error messages not tied to a derivation
}

type activity struct {
	drv   string
	start time.Time
}

func newEventParser(emit func(Event), cancelled func() bool) *eventParser {
	if emit == nil {
		emit = func(Event) {}
	}
	return &eventParser{
		now: time.Now, emit: emit, cancelled: cancelled,
		acts:    map[uint64]activity{},
		Failed:  map[string]string{},
		Logs:    map[string][]string{},
		Elapsed: map[string]time.Duration{},
		Built:   map[string]bool{},
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
			p.emit(Event{Kind: BuildStarted, DrvPath: drv})
		} else {
			p.emit(Event{Kind: Substituting, DrvPath: drv})
		}
	case "stop":
		a, ok := p.acts[ev.ID]
		if !ok {
			return
		}
		delete(p.acts, ev.ID)
		if !strings.HasSuffix(a.drv, ".drv") {
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
	case "result":
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
	case "msg":
		if ev.Level == 0 {
			p.message(ev.Msg)
		}
	}
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
	if _, seen := p.Failed[drv]; !seen {
		p.Failed[drv] = first
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
