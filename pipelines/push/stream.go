package push

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/ipex-flake/ipex-flake/pipelines/build"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

// Stager uploads derivation outputs to a staging cache while the build
// runs, as each one finishes, so that other jobs can substitute them
// before the whole build ends. It sits between the build and its progress
// display (Wrap). nix reports the end of a requested derivation's build
// only when it exits, so a finished build is noticed from nix's own
// counter of finished builds: each time it grows, the outputs of the
// derivations that started are checked in the store, and the valid ones
// not yet uploaded are signed (with StageOptions.Signer) and copied.
// Stage, after the build, is the complete and verified upload; what the
// Stager misses or fails to upload it does then (failures here are
// warnings). Its messages reach the display through the build's own
// progress calls (as phases), so that only one goroutine writes there.
type Stager struct {
	o       StageOptions
	log     io.Writer
	ctx     context.Context
	kick    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	seen    map[string]bool // derivations that started building
	staged  map[string]bool // derivations whose outputs are uploaded
	outs    map[string][]string
	last    int
	closed  bool
	pending []string
	// Uploaded lists the out paths uploaded while the build ran.
	uploaded []string
}

// NewStager starts the background uploader; Close stops it.
func NewStager(ctx context.Context, o StageOptions) *Stager {
	s := &Stager{o: o, log: o.Log, ctx: ctx, kick: make(chan struct{}, 1), done: make(chan struct{}),
		seen: map[string]bool{}, staged: map[string]bool{}, outs: map[string][]string{}}
	if s.log == nil {
		s.log = io.Discard
	}
	go s.loop()
	return s
}

// Wrap returns a build.Progress that feeds s and forwards to p.
func (s *Stager) Wrap(p build.Progress) build.Progress { return &stagingProgress{s: s, next: p} }

type stagingProgress struct {
	s    *Stager
	next build.Progress
}

// Phase implements build.Progress.
func (p *stagingProgress) Phase(msg string) {
	p.flush()
	if p.next != nil {
		p.next.Phase(msg)
	}
}

// flush shows the Stager's messages, on the build's goroutine.
func (p *stagingProgress) flush() {
	for _, l := range p.s.take() {
		if p.next != nil {
			p.next.Phase(l)
		}
	}
}

// Event implements build.Progress: the Stager sees it first.
func (p *stagingProgress) Event(e build.Event) {
	p.s.event(e)
	p.flush()
	if p.next != nil {
		p.next.Event(e)
	}
}

// event never blocks: the build's log is read on this goroutine.
func (s *Stager) event(e build.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.Kind {
	case build.BuildStarted:
		s.seen[e.DrvPath] = true
	case build.BuildFinished, build.BuildStopped:
		s.seen[e.DrvPath] = true
		s.poke()
	case build.BuildCounts:
		if e.Counts.Done > s.last {
			s.last = e.Counts.Done
			s.poke()
		}
	}
}

func (s *Stager) poke() {
	if s.closed {
		return
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// logf queues a message for the display.
func (s *Stager) logf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(s.pending, fmt.Sprintf(format, args...))
}

// take returns and forgets the queued messages.
func (s *Stager) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending
	s.pending = nil
	return p
}

// Close waits for the upload under way and stops; it writes the messages
// not shown yet to the log (the build has ended: nothing else writes there)
// and returns the out paths uploaded while the build ran.
func (s *Stager) Close() []string {
	s.mu.Lock()
	s.closed = true
	close(s.kick)
	s.mu.Unlock()
	<-s.done
	for _, l := range s.take() {
		fmt.Fprintln(s.log, l)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sort.Strings(s.uploaded)
	return s.uploaded
}

func (s *Stager) loop() {
	defer close(s.done)
	for range s.kick {
		if s.ctx.Err() != nil {
			continue
		}
		if err := s.round(); err != nil {
			s.logf("warning: staging while building: %v (the upload after the build retries)", err)
		}
	}
}

// round uploads the outputs of started derivations that are now valid.
func (s *Stager) round() error {
	s.mu.Lock()
	var drvs []string
	for d := range s.seen {
		if !s.staged[d] {
			drvs = append(drvs, d)
		}
	}
	s.mu.Unlock()
	sort.Strings(drvs)
	var paths []string
	var ready []string
	for _, d := range drvs {
		outs, err := s.outputs(d)
		if err != nil {
			return err
		}
		invalid, err := build.InvalidPaths(s.ctx, s.o.Engine, outs)
		if err != nil {
			return err
		}
		if len(invalid) == 0 && len(outs) > 0 {
			ready = append(ready, d)
			paths = append(paths, outs...)
		}
	}
	if len(paths) == 0 {
		return nil
	}
	// nix's own output is kept out of the display; errors carry its tail.
	if signer := s.o.Signer; signer != nil {
		if ns, ok := signer.(*NixSigner); ok {
			quiet := *ns
			quiet.Log = nil
			signer = &quiet
		}
		// nix copy uploads the closure: all of it carries the signature.
		closure, err := Closure(s.ctx, s.o.Engine, paths)
		if err != nil {
			return err
		}
		if err := signer.Sign(s.ctx, closure); err != nil {
			return err
		}
	}
	if err := (&NixCopy{Engine: s.o.Engine, URI: s.o.URI}).Upload(s.ctx, paths); err != nil {
		return err
	}
	s.logf("staging: uploaded %s to %s", strings.Join(paths, " "), s.o.URI)
	s.mu.Lock()
	for _, d := range ready {
		s.staged[d] = true
	}
	s.uploaded = append(s.uploaded, paths...)
	s.mu.Unlock()
	return nil
}

// outputs returns the out paths of a derivation (nix-store --query --outputs).
func (s *Stager) outputs(drv string) ([]string, error) {
	if o, ok := s.outs[drv]; ok {
		return o, nil
	}
	var out, errb bytes.Buffer
	res, err := s.o.Engine.Run(s.ctx, engine.Cmd{Args: []string{"nix-store", "--query", "--outputs", drv}, Stdout: &out, Stderr: &errb})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("nix-store --query --outputs %s: %s", drv, lastLines(errb.String(), 2))
	}
	o := strings.Fields(out.String())
	s.outs[drv] = o
	return o, nil
}
