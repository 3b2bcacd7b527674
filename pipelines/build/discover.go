package build

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/ipex-flake/ipex-flake/internal/nixstr"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
)

//go:embed discover.nix
var discoverNix string

// Output is one discovered flake output.
type Output struct {
	Attr   string `json:"attr"`
	Kind   string `json:"kind"`
	System string `json:"system"`
	// DrvSystem is the derivation's own system (null for apps).
	DrvSystem string            `json:"drvSystem"`
	OK        bool              `json:"ok"`
	DrvPath   string            `json:"drvPath"`
	Outputs   map[string]string `json:"outputs"`
	Features  []string          `json:"features"`
	// Error is the evaluation error of an output that did not evaluate.
	Error string `json:"error"`
	// Unselected: the output's system is not one of the selected systems
	// (not evaluated).
	Unselected bool `json:"unselected"`
	// Unwanted: no --attr pattern matches it (not evaluated; only in
	// Discovery.Listed).
	Unwanted bool `json:"unwanted"`
}

// Selected reports whether the build selects o: its system is one of
// --systems. Discovery decides it, before evaluation from the attribute
// path (packages.<system>.…) and after it from the derivation
// (configurations, see markUnselected). The build reports the others
// skipped (NotSelectedReason) and shard planning leaves them out, both
// through this function.
func (o Output) Selected() bool { return !o.Unselected }

// OutPaths returns the output paths sorted by output name.
func (o Output) OutPaths() []string {
	names := make([]string, 0, len(o.Outputs))
	for n := range o.Outputs {
		names = append(names, n)
	}
	sort.Strings(names)
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = o.Outputs[n]
	}
	return paths
}

type discoverArgs struct {
	Flake    string   `json:"flake"`
	Systems  []string `json:"systems"`
	Patterns []string `json:"patterns"`
	Only     []string `json:"only"`
	List     bool     `json:"list"`
}

// Discovery is the result of evaluating a flake's outputs.
type Discovery struct {
	// Outputs are the outputs the patterns select: evaluated when their
	// system is selected, else marked Unselected.
	Outputs []Output
	// Listed are all outputs of the flake, for explaining a selection.
	Listed []Output
	// EvalProcesses counts the nix evaluation processes started.
	EvalProcesses int
	mu            sync.Mutex
}

func (d *Discovery) count() {
	d.mu.Lock()
	d.EvalProcesses++
	d.mu.Unlock()
}

// EvalError is returned when the flake as a whole does not evaluate.
type EvalError struct {
	Flake string
	Msg   string
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("flake %s does not evaluate:\n%s", e.Flake, indent(e.Msg))
}

// Hint names the likely fix for the evaluation error.
func (e *EvalError) Hint() string {
	switch m := e.Msg; {
	case strings.Contains(m, "unable to download"), strings.Contains(m, "resolve host"), strings.Contains(m, "unable to fetch"), strings.Contains(m, "Could not resolve"):
		return "The flake's inputs could not be fetched: check the network (and proxy settings), or lock them on a machine with internet (`nix flake lock`) and commit flake.lock. Without a network, try --flake ./examples/offline."
	case strings.Contains(m, "syntax error"):
		return "Fix the syntax error in flake.nix (`nix-instantiate --parse flake.nix` shows it)."
	default:
		return fmt.Sprintf("Run `nix flake show %s` for the full error, fix the flake, or pass --flake with another flake.", e.Flake)
	}
}

// SelectionError is returned when --attr patterns or --systems select
// nothing: it names them and lists the attribute prefixes that exist.
type SelectionError struct {
	// Patterns are the --attr patterns that match no output.
	Patterns []string
	// Systems are the selected systems without outputs.
	Systems []string
	// Prefixes are the attribute prefixes the flake has
	// ("packages.x86_64-linux", "nixosConfigurations.host", …).
	Prefixes []string
	// FlakeSystems are the systems the flake has outputs for.
	FlakeSystems []string
}

func (e *SelectionError) Error() string {
	var parts []string
	if len(e.Patterns) > 0 {
		parts = append(parts, fmt.Sprintf("--attr %s matches no output", strings.Join(quoteAll(e.Patterns), ", ")))
	}
	if len(e.Systems) > 0 {
		parts = append(parts, fmt.Sprintf("--systems %s: the flake has no outputs for %s (it has: %s)",
			strings.Join(e.Systems, ","), strings.Join(e.Systems, ", "), orNone(e.FlakeSystems)))
	}
	if len(parts) == 0 {
		parts = append(parts, "the selection matches no output")
	}
	return fmt.Sprintf("%s\nattribute prefixes that exist: %s\nfix the pattern (* matches within one segment, ** across segments) or --systems",
		strings.Join(parts, "; "), orNone(e.Prefixes))
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

func orNone(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	return strings.Join(ss, ", ")
}

// prefix is an output's attribute prefix: kind.system for per-system
// outputs, kind.name for configurations.
func prefix(attr string) string {
	parts := strings.SplitN(attr, ".", 3)
	if len(parts) < 2 {
		return attr
	}
	return parts[0] + "." + parts[1]
}

// checkSelection returns a *SelectionError when a pattern matches no listed
// output, a selected system has none, or nothing at all is selected. A
// flake without any outputs selects nothing without a selection error.
func checkSelection(globs, systems []string, d *Discovery) error {
	if len(d.Listed) == 0 && len(globs) == 0 {
		return nil
	}
	res, _ := GlobsToRegexps(globs)
	e := &SelectionError{}
	prefixes := map[string]bool{}
	flakeSystems := map[string]bool{}
	for _, o := range d.Listed {
		prefixes[prefix(o.Attr)] = true
		if o.System != "" {
			flakeSystems[o.System] = true
		}
	}
	for _, o := range d.Outputs {
		if o.System != "" {
			flakeSystems[o.System] = true
		}
	}
	for i, re := range res {
		rx, err := regexp.Compile("^(?:" + re + ")$")
		if err != nil {
			continue
		}
		hit := false
		for _, o := range d.Listed {
			if rx.MatchString(o.Attr) {
				hit = true
				break
			}
		}
		if !hit {
			e.Patterns = append(e.Patterns, globs[i])
		}
	}
	if len(flakeSystems) > 0 {
		for _, s := range systems {
			if !flakeSystems[s] {
				e.Systems = append(e.Systems, s)
			}
		}
	}
	if len(e.Patterns) == 0 && len(e.Systems) == 0 && len(selectedOutputs(d.Outputs)) > 0 {
		return nil
	}
	e.Prefixes = slices.Sorted(maps.Keys(prefixes))
	e.FlakeSystems = slices.Sorted(maps.Keys(flakeSystems))
	return e
}

// Discover evaluates every selected output of flake in one nix evaluation.
// Errors that builtins.tryEval catches are attributed to their output; an
// error that aborts the whole evaluation makes Discover list the outputs and
// bisect the list, so each failure lands on its own output after about
// 2·log2(N) more evaluations per failure. Output messages of failed outputs
// are collected with one evaluation each. A selection that matches nothing
// is a *SelectionError.
func Discover(ctx context.Context, eng engine.Engine, flake string, systems, globs []string, jobs int) (*Discovery, error) {
	patterns, err := GlobsToRegexps(globs)
	if err != nil {
		return nil, err
	}
	args := discoverArgs{Flake: flake, Systems: systems, Patterns: patterns}
	d := &Discovery{}

	all, stderr, err := evalOutputs(ctx, eng, args, d)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// The whole evaluation aborted: list, then bisect.
		list := args
		list.List = true
		listed, lerr, err2 := evalOutputs(ctx, eng, list, d)
		if err2 != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			msg := lerr
			if msg == "" {
				msg = stderr
			}
			return nil, &EvalError{Flake: flake, Msg: msg}
		}
		var todo []Output
		all = nil
		for _, l := range listed {
			if l.Unwanted || !l.Selected() {
				all = append(all, l)
			} else {
				todo = append(todo, l)
			}
		}
		all = append(all, bisect(ctx, eng, args, todo, stderr, d)...)
	}
	var outs []Output
	for _, o := range all {
		d.Listed = append(d.Listed, o)
		if !o.Unwanted {
			outs = append(outs, o)
		}
	}
	// Messages for outputs whose error tryEval swallowed.
	parallel(len(outs), jobs, func(i int) {
		if !outs[i].OK && outs[i].Selected() && outs[i].Error == "" {
			outs[i].Error = plainEvalError(ctx, eng, flake, outs[i].Attr)
			d.count()
		}
	})
	d.Outputs = append(d.Outputs, markUnselected(outs, systems)...)
	sort.Slice(d.Outputs, func(i, j int) bool { return d.Outputs[i].Attr < d.Outputs[j].Attr })
	if err := checkSelection(globs, systems, d); err != nil {
		return d, err
	}
	return d, nil
}

// markUnselected marks the evaluated outputs whose system, known only
// from the derivation (configurations), is not one of systems. The outputs
// of the other kinds were marked by the evaluation already.
func markUnselected(outs []Output, systems []string) []Output {
	for i, o := range outs {
		if o.OK && o.System != "" && !slices.Contains(systems, o.System) {
			outs[i].Unselected = true
		}
	}
	return outs
}

// selectedOutputs returns the outputs the build selects, in order.
func selectedOutputs(outs []Output) []Output {
	var sel []Output
	for _, o := range outs {
		if o.Selected() {
			sel = append(sel, o)
		}
	}
	return sel
}

// bisect evaluates items, whose joint evaluation failed with stderr, in
// halves until each failure is on its own output: one failing output out of
// N costs 2·log2(N) evaluations, the halves of each step in parallel.
func bisect(ctx context.Context, eng engine.Engine, args discoverArgs, items []Output, stderr string, d *Discovery) []Output {
	if len(items) == 0 {
		return nil
	}
	if len(items) == 1 {
		l := items[0]
		msg := stderr
		if msg == "" {
			msg = "output vanished between listing and evaluation"
		}
		return []Output{{Attr: l.Attr, Kind: l.Kind, System: l.System, Error: msg}}
	}
	halves := [2][]Output{items[:len(items)/2], items[len(items)/2:]}
	var res [2][]Output
	parallel(2, 2, func(i int) {
		one := args
		one.List = false
		for _, l := range halves[i] {
			one.Only = append(one.Only, l.Attr)
		}
		outs, msg, err := evalOutputs(ctx, eng, one, d)
		switch {
		case err == nil:
			res[i] = outs
		case ctx.Err() != nil:
			for _, l := range halves[i] {
				res[i] = append(res[i], Output{Attr: l.Attr, Kind: l.Kind, System: l.System, Error: "interrupted"})
			}
		default:
			if msg == "" {
				msg = err.Error()
			}
			res[i] = bisect(ctx, eng, args, halves[i], msg, d)
		}
	})
	return append(res[0], res[1]...)
}

// parallel calls fn(0..n-1) with at most jobs calls in flight.
func parallel(n, jobs int, fn func(i int)) {
	if jobs < 1 {
		jobs = 1
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, jobs)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}(i)
	}
	wg.Wait()
}

// plainEvalError evaluates one attribute's drvPath without tryEval so that
// nix prints the error message.
func plainEvalError(ctx context.Context, eng engine.Engine, flake, attr string) string {
	var stdout, stderr bytes.Buffer
	expr := fmt.Sprintf("let f = builtins.getFlake %s; in (%s).drvPath or (%s).program",
		nixstr.Quote(flake), attrExpr("f", attr), attrExpr("f", attr))
	_, err := eng.Run(ctx, engine.Cmd{
		Args:   nixcli.Nix("eval", "--impure", "--raw", "--expr", expr),
		Stdout: &stdout, Stderr: &stderr,
	})
	if msg := CleanNixError(stderr.String()); msg != "" {
		return msg
	}
	if err != nil {
		return err.Error()
	}
	return "evaluation failed"
}

func attrExpr(root, attr string) string {
	var b strings.Builder
	b.WriteString(root)
	for _, p := range strings.Split(attr, ".") {
		b.WriteString(".")
		b.WriteString(nixstr.Quote(p))
	}
	return b.String()
}

// evalOutputs runs one nix evaluation of discover.nix. A nil error with a
// non-empty stderr never happens: stderr is returned for failed evaluations.
func evalOutputs(ctx context.Context, eng engine.Engine, args discoverArgs, d *Discovery) ([]Output, string, error) {
	d.count()
	js, err := json.Marshal(args)
	if err != nil {
		return nil, "", err
	}
	expr := "(" + discoverNix + ") " + nixstr.Quote(string(js))
	var stdout, stderr bytes.Buffer
	res, err := eng.Run(ctx, engine.Cmd{
		Args:   nixcli.Nix("eval", "--json", "--impure", "--expr", expr),
		Stdout: &stdout, Stderr: &stderr,
	})
	if err != nil {
		return nil, CleanNixError(stderr.String()), err
	}
	if res.ExitCode != 0 {
		return nil, CleanNixError(stderr.String()), fmt.Errorf("nix eval exited with %d", res.ExitCode)
	}
	var outs []Output
	if err := json.Unmarshal(stdout.Bytes(), &outs); err != nil {
		return nil, "", fmt.Errorf("reading nix eval output: %w", err)
	}
	return outs, "", nil
}

var ansiRe = regexp.MustCompile("\x1b\\[[0-9;]*[a-zA-Z]")

// CleanNixError strips colours and nix's "--show-trace" hint from an error.
func CleanNixError(s string) string {
	s = ansiRe.ReplaceAllString(s, "")
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "use '--show-trace'") || strings.HasPrefix(l, "warning: Git tree") ||
			(strings.HasPrefix(l, "warning: ") && strings.Contains(l, "; retrying in ")) {
			continue
		}
		keep = append(keep, l)
	}
	return strings.TrimSpace(strings.Join(keep, "\n"))
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// configurationPaths are the attributes built of a configuration.
var configurationPaths = map[string]string{
	"nixosConfigurations": "config.system.build.toplevel",
	"homeConfigurations":  "activationPackage",
}

// expandShorthand turns "nixosConfigurations.NAME" into the toplevel and
// "homeConfigurations.NAME" into the activation package.
func expandShorthand(g string) string {
	parts := strings.Split(g, ".")
	if len(parts) == 2 && !strings.Contains(parts[1], "**") {
		if p, ok := configurationPaths[parts[0]]; ok {
			return g + "." + p
		}
	}
	return g
}

// GlobsToRegexps turns --attr globs into POSIX extended regexes for
// builtins.match: `*` matches within one attribute segment, `**` across
// segments, `?` one character; `nixosConfigurations.NAME` and
// `homeConfigurations.NAME` select the configuration's toplevel and
// activation package. Nil means no filter.
func GlobsToRegexps(globs []string) ([]string, error) {
	if len(globs) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(globs))
	for _, g := range globs {
		if strings.TrimSpace(g) == "" {
			return nil, fmt.Errorf("--attr: empty pattern")
		}
		g = expandShorthand(g)
		var b strings.Builder
		for i := 0; i < len(g); i++ {
			c := g[i]
			switch {
			case c == '*' && i+1 < len(g) && g[i+1] == '*':
				b.WriteString(".*")
				i++
			case c == '*':
				b.WriteString("[^.]*")
			case c == '?':
				b.WriteString("[^.]")
			case strings.IndexByte(`.+()|[]{}^$\`, c) >= 0:
				b.WriteByte('\\')
				b.WriteByte(c)
			default:
				b.WriteByte(c)
			}
		}
		out = append(out, b.String())
	}
	return out, nil
}
