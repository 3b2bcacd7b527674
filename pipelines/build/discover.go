package build

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

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
}

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
	Outputs []Output
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

// Discover evaluates every selected output of flake in one nix evaluation.
// Errors that builtins.tryEval catches are attributed to their output; an
// error that aborts the whole evaluation makes Discover list the outputs and
// evaluate them one by one (at most jobs at a time) so each failure lands on
// its own output. Output messages of failed outputs are collected the same way.
func Discover(ctx context.Context, eng engine.Engine, flake string, systems, globs []string, jobs int) (*Discovery, error) {
	patterns, err := GlobsToRegexps(globs)
	if err != nil {
		return nil, err
	}
	args := discoverArgs{Flake: flake, Systems: systems, Patterns: patterns}
	d := &Discovery{}

	outs, stderr, err := evalOutputs(ctx, eng, args, d)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// The whole evaluation aborted: list, then isolate.
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
		outs = isolate(ctx, eng, args, listed, jobs, d)
	}
	// Messages for outputs whose error tryEval swallowed.
	parallel(len(outs), jobs, func(i int) {
		if !outs[i].OK && outs[i].Error == "" {
			outs[i].Error = plainEvalError(ctx, eng, flake, outs[i].Attr)
			d.count()
		}
	})
	// Configurations carry their system in the derivation: keep selected ones.
	sel := map[string]bool{}
	for _, s := range systems {
		sel[s] = true
	}
	for _, o := range outs {
		if o.System == "" || sel[o.System] || !o.OK {
			d.Outputs = append(d.Outputs, o)
		}
	}
	sort.Slice(d.Outputs, func(i, j int) bool { return d.Outputs[i].Attr < d.Outputs[j].Attr })
	return d, nil
}

// isolate evaluates each listed output in its own process.
func isolate(ctx context.Context, eng engine.Engine, args discoverArgs, listed []Output, jobs int, d *Discovery) []Output {
	res := make([]Output, len(listed))
	parallel(len(listed), jobs, func(i int) {
		l := listed[i]
		one := args
		one.Only = []string{l.Attr}
		one.List = false
		outs, stderr, err := evalOutputs(ctx, eng, one, d)
		switch {
		case err == nil && len(outs) == 1 && outs[0].OK:
			res[i] = outs[0]
		case err == nil && len(outs) == 1:
			res[i] = outs[0]
			res[i].Error = plainEvalError(ctx, eng, args.Flake, l.Attr)
			d.count()
		default:
			msg := stderr
			if msg == "" && err != nil {
				msg = err.Error()
			}
			if msg == "" {
				msg = "output vanished between listing and evaluation"
			}
			res[i] = Output{Attr: l.Attr, Kind: l.Kind, System: l.System, Error: msg}
		}
	})
	return res
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
		nixString(flake), attrExpr("f", attr), attrExpr("f", attr))
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
		b.WriteString(nixString(p))
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
	expr := "(" + discoverNix + ") " + nixString(string(js))
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

// nixString quotes s as a Nix string literal.
func nixString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `${`, `\${`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
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

// GlobsToRegexps turns --attr globs into POSIX extended regexes for
// builtins.match: `*` matches within one attribute segment, `**` across
// segments, `?` one character. Nil means no filter.
func GlobsToRegexps(globs []string) ([]string, error) {
	if len(globs) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(globs))
	for _, g := range globs {
		if strings.TrimSpace(g) == "" {
			return nil, fmt.Errorf("--attr: empty pattern")
		}
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
