// Package results records stage results against a commit and reads them
// back. Promotion gates read these records: the gate is data, not trust.
// Every result names the flake and the build report it tested (Binding);
// Check accepts only results bound to the flake and report being pushed or
// promoted.
//
// Two stores exist: GitHub commit statuses (context "ci/<stage>", the
// binding at the end of the description) when a token and repository are
// known, and a local JSON file otherwise.
package results

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/atomicfile"
	"github.com/ipex-flake/ipex-flake/internal/clierr"
)

// Stage result states.
const (
	StatePassed  = "passed"
	StateFailed  = "failed"
	StateSkipped = "skipped"
	StatePending = "pending"
)

// Result is one stage's outcome for one commit, bound to the flake and
// build report it tested.
type Result struct {
	Stage       string `json:"stage"`
	Rev         string `json:"rev"`
	State       string `json:"state"`
	Description string `json:"description,omitempty"`
	URL         string `json:"url,omitempty"`
	// Binding names the flake and build report the stage tested.
	Binding
	// External is set when the stage tested services it did not start
	// from the build report (--external-services): the beta and stable
	// gates refuse such a result unless the promotion allows it.
	External bool      `json:"external,omitempty"`
	Time     time.Time `json:"time"`
}

// Store records and reads stage results.
type Store interface {
	// Record stores r, replacing an earlier result of the same stage and rev.
	Record(ctx context.Context, r Result) error
	// Get returns the latest result per stage for rev.
	Get(ctx context.Context, rev string) (map[string]Result, error)
}

// FileStore keeps results in a JSON file (default .git/ipex-ci/results.json
// of the repository, so it is never committed).
type FileStore struct {
	Path string
	mu   sync.Mutex
}

var _ Store = (*FileStore)(nil)

type fileData struct {
	Results []Result `json:"results"`
}

// DefaultPath returns the results file of the git repository whose git
// directory is gitDir.
func DefaultPath(gitDir string) string {
	return filepath.Join(gitDir, "ipex-ci", "results.json")
}

// Record implements Store. Concurrent writers (in-process and other
// processes) are serialised with a lock file.
func (s *FileStore) Record(_ context.Context, r Result) error {
	if r.Stage == "" || r.Rev == "" {
		return errors.New("results: stage and rev are required")
	}
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := lockFile(s.Path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	d, err := s.read()
	if err != nil {
		return err
	}
	out := d.Results[:0]
	for _, old := range d.Results {
		if old.Stage != r.Stage || old.Rev != r.Rev {
			out = append(out, old)
		}
	}
	d.Results = append(out, r)
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(s.Path, append(data, '\n'), 0o644)
}

// Get implements Store.
func (s *FileStore) Get(_ context.Context, rev string) (map[string]Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.read()
	if err != nil {
		return nil, err
	}
	m := map[string]Result{}
	for _, r := range d.Results {
		if r.Rev == rev {
			m[r.Stage] = r
		}
	}
	return m, nil
}

func (s *FileStore) read() (*fileData, error) {
	var d fileData
	data, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return &d, nil
	}
	if err != nil {
		return nil, clierr.Usagef("results file %s cannot be read (%v): fix its permissions, or move it away and run the stages again (ci test)", s.Path, err)
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, clierr.Usagef("results file %s is corrupt (%v): move it away and run the stages again (ci test)", s.Path, err)
	}
	return &d, nil
}

func lockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
