// Package fakedagger is a recording fake of the Dagger engine's GraphQL API
// for tests. The Dagger Go SDK reaches it through DAGGER_SESSION_PORT and
// DAGGER_SESSION_TOKEN, exactly as it reaches a session started by `dagger
// run`. Every query is parsed (github.com/vektah/gqlparser/v2) and kept as
// chains of calls, so tests assert on fields and arguments rather than on
// query text, whose argument order varies.
//
// The fake answers `id` and `sync` with fresh IDs and remembers the chain
// each ID denotes; `node(id:)` and `loadXFromID(id:)` continue from that
// chain. `exitCode`, `stdout` and `stderr` answer from ExecResult for the
// nearest `withExec` of the chain. Other leaf fields answer null.
package fakedagger

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// Token is the session token the fake expects as the basic-auth user.
const Token = "fake-dagger-session-token"

// Call is one field selected in a query, with its arguments decoded to Go
// values (string, int64, float64, bool, []any, map[string]any; enum values
// as their name).
type Call struct {
	Field string
	Args  map[string]any
}

// String renders the call as field(arg:value, …) with sorted arguments.
func (c Call) String() string {
	if len(c.Args) == 0 {
		return c.Field
	}
	keys := make([]string, 0, len(c.Args))
	for k := range c.Args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		b, _ := json.Marshal(c.Args[k])
		parts[i] = k + ":" + string(b)
	}
	return c.Field + "(" + strings.Join(parts, ", ") + ")"
}

// Str returns the string argument name ("" when absent or not a string).
func (c Call) Str(name string) string {
	s, _ := c.Args[name].(string)
	return s
}

// Strings returns the list-of-strings argument name.
func (c Call) Strings(name string) []string {
	l, _ := c.Args[name].([]any)
	out := make([]string, 0, len(l))
	for _, v := range l {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Obj is an object the API handed out: the call that made it and the object
// it was selected on (nil for a field of the root Query).
type Obj struct {
	Call
	Parent *Obj
	// ID is the ID the fake gave this object ("" until `id` or `sync`).
	ID string

	result *ExecResult
}

// Chain returns the calls from the root to o.
func (o *Obj) Chain() []*Obj {
	var out []*Obj
	for x := o; x != nil; x = x.Parent {
		out = append([]*Obj{x}, out...)
	}
	return out
}

// Find returns the nearest call named field on the chain ending at o
// (o itself included), or nil.
func (o *Obj) Find(field string) *Obj {
	for x := o; x != nil; x = x.Parent {
		if x.Field == field {
			return x
		}
	}
	return nil
}

// FindAll returns every call named field on the chain, root first.
func (o *Obj) FindAll(field string) []*Obj {
	var out []*Obj
	for _, x := range o.Chain() {
		if x.Field == field {
			out = append(out, x)
		}
	}
	return out
}

// String renders the chain as a.b(…).c(…).
func (o *Obj) String() string {
	parts := []string{}
	for _, x := range o.Chain() {
		parts = append(parts, x.Call.String())
	}
	return strings.Join(parts, ".")
}

// ExecResult is what an exec "printed" and how it exited.
type ExecResult struct {
	ExitCode int
	Stdout   string
	Stderr   string
}

// Server is the fake engine.
type Server struct {
	*httptest.Server
	// Port is the TCP port, for DAGGER_SESSION_PORT.
	Port string

	// ExecResult, when set, decides the result of each withExec (called
	// once per exec object, with the server locked: read the *Obj, do not
	// call Server methods). The default is exit 0 with no output.
	ExecResult func(exec *Obj) ExecResult

	// BeforeExec, when set, is called (unlocked) with the request's context
	// before answering a query that selects withExec: a test can hold the
	// "running" command there, e.g. until the client cancels. When it
	// returns and the request is cancelled, the query fails.
	BeforeExec func(ctx context.Context)

	stalled chan struct{} // non-nil: requests wait until it closes
	held    int           // requests held by Stall

	mu      sync.Mutex
	nextID  int
	objs    map[string]*Obj
	calls   []Call
	queries []string
	execs   []*Obj
	fails   map[string]string
}

// New starts a fake engine that stops when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{objs: map[string]*Obj{}, fails: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	_, port, err := net.SplitHostPort(s.Listener.Addr().String())
	if err != nil {
		t.Fatalf("fakedagger: %v", err)
	}
	s.Port = port
	return s
}

// Setenv points the Dagger SDK at this fake for the rest of the test.
func (s *Server) Setenv(t testing.TB) {
	t.Helper()
	t.Setenv("DAGGER_SESSION_PORT", s.Port)
	t.Setenv("DAGGER_SESSION_TOKEN", Token)
	t.Setenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "")
}

// Stall makes the engine accept connections and never answer, like an
// engine that hangs: every request waits until its client gives up (or the
// test ends).
func (s *Server) Stall(t testing.TB) {
	t.Helper()
	ch := make(chan struct{})
	s.mu.Lock()
	s.stalled = ch
	s.mu.Unlock()
	// Cleanups run last-registered first: release the requests before the
	// server's Close waits for them.
	t.Cleanup(func() { close(ch) })
}

// Held returns how many requests Stall has held unanswered.
func (s *Server) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// FailOn makes every query that selects field answer with a GraphQL error
// carrying message (e.g. FailOn("from", "pull access denied")).
func (s *Server) FailOn(field, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails[field] = message
}

// Resolve returns the object an ID denotes, or nil.
func (s *Server) Resolve(id string) *Obj {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.objs[id]
}

// HostPath returns the path of the host object an ID denotes when it is
// host.<field>(path: …) (field "file" or "directory"), else a description
// of what the ID denotes instead, which no path equals.
func (s *Server) HostPath(id, field string) string {
	o := s.Resolve(id)
	switch {
	case o == nil:
		return "<no object for ID " + id + ">"
	case o.Field != field || o.Parent == nil || o.Parent.Field != "host":
		return "<not host." + field + ": " + o.String() + ">"
	}
	return o.Str("path")
}

// Calls returns every field selected so far, in the order seen.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Queries returns the raw query documents received.
func (s *Server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

// Execs returns the withExec objects that were evaluated (synced or whose
// exit code or output was asked for), in the order first seen.
func (s *Server) Execs() []*Obj {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Obj(nil), s.execs...)
}

type request struct {
	Query         string         `json:"query"`
	Variables     map[string]any `json:"variables"`
	OperationName string         `json:"operationName"`
}

type gqlError struct {
	Message string `json:"message"`
}

type response struct {
	Data   any        `json:"data"`
	Errors []gqlError `json:"errors,omitempty"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	stalled := s.stalled
	s.mu.Unlock()
	if stalled != nil {
		s.mu.Lock()
		s.held++
		s.mu.Unlock()
		select {
		case <-stalled:
		case <-r.Context().Done():
		}
		return
	}
	if r.URL.Path != "/query" {
		http.Error(w, "fakedagger: no such path "+r.URL.Path, http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "fakedagger: want POST, got "+r.Method, http.StatusMethodNotAllowed)
		return
	}
	if user, _, ok := r.BasicAuth(); !ok || user != Token {
		http.Error(w, "fakedagger: bad session token", http.StatusUnauthorized)
		return
	}
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "fakedagger: "+err.Error(), http.StatusBadRequest)
		return
	}
	data, err := s.execute(r.Context(), req)
	resp := response{Data: data}
	if err != nil {
		resp = response{Errors: []gqlError{{Message: err.Error()}}}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (s *Server) execute(ctx context.Context, req request) (any, error) {
	doc, gerr := parser.ParseQuery(&ast.Source{Input: req.Query})
	if gerr != nil {
		return nil, fmt.Errorf("fakedagger: parse query: %v", gerr)
	}
	if s.BeforeExec != nil && selectsExec(doc) {
		s.BeforeExec(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = append(s.queries, req.Query)
	out := map[string]any{}
	for _, op := range doc.Operations {
		if err := s.selectSet(nil, op.SelectionSet, req.Variables, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// selectsExec reports whether any field of doc is withExec.
func selectsExec(doc *ast.QueryDocument) bool {
	var walk func(ast.SelectionSet) bool
	walk = func(set ast.SelectionSet) bool {
		for _, sel := range set {
			switch sel := sel.(type) {
			case *ast.Field:
				if sel.Name == "withExec" || walk(sel.SelectionSet) {
					return true
				}
			case *ast.InlineFragment:
				if walk(sel.SelectionSet) {
					return true
				}
			}
		}
		return false
	}
	for _, op := range doc.Operations {
		if walk(op.SelectionSet) {
			return true
		}
	}
	return false
}

func (s *Server) selectSet(cur *Obj, set ast.SelectionSet, vars map[string]any, out map[string]any) error {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			call := Call{Field: sel.Name, Args: map[string]any{}}
			for _, a := range sel.Arguments {
				v, err := a.Value.Value(vars)
				if err != nil {
					return fmt.Errorf("fakedagger: %s(%s): %v", sel.Name, a.Name, err)
				}
				call.Args[a.Name] = v
			}
			s.calls = append(s.calls, call)
			if msg, ok := s.fails[call.Field]; ok {
				return fmt.Errorf("%s", msg)
			}
			key := sel.Alias
			if key == "" {
				key = sel.Name
			}
			v, err := s.field(cur, call, sel.SelectionSet, vars)
			if err != nil {
				return err
			}
			out[key] = v
		case *ast.InlineFragment:
			if err := s.selectSet(cur, sel.SelectionSet, vars, out); err != nil {
				return err
			}
		default:
			return fmt.Errorf("fakedagger: unsupported selection %T", sel)
		}
	}
	return nil
}

func (s *Server) field(cur *Obj, call Call, set ast.SelectionSet, vars map[string]any) (any, error) {
	if len(set) == 0 {
		return s.leaf(cur, call)
	}
	var obj *Obj
	if call.Field == "node" || (strings.HasPrefix(call.Field, "load") && strings.HasSuffix(call.Field, "FromID")) {
		id := call.Str("id")
		obj = s.objs[id]
		if obj == nil {
			return nil, fmt.Errorf("fakedagger: %s: unknown id %q", call.Field, id)
		}
	} else {
		obj = &Obj{Call: call, Parent: cur}
	}
	sub := map[string]any{}
	if err := s.selectSet(obj, set, vars, sub); err != nil {
		return nil, err
	}
	return sub, nil
}

func (s *Server) leaf(cur *Obj, call Call) (any, error) {
	switch call.Field {
	case "id", "sync":
		if cur == nil {
			return nil, fmt.Errorf("fakedagger: %s on the root query", call.Field)
		}
		if call.Field == "sync" {
			s.noteExec(cur)
		}
		if cur.ID == "" {
			s.nextID++
			cur.ID = fmt.Sprintf("fakeid:%d:%s", s.nextID, cur.Field)
			s.objs[cur.ID] = cur
		}
		return cur.ID, nil
	case "exitCode", "stdout", "stderr":
		exec := cur.Find("withExec")
		if exec == nil {
			return nil, fmt.Errorf("fakedagger: %s: no command was executed", call.Field)
		}
		res := s.noteExec(exec)
		switch call.Field {
		case "exitCode":
			return res.ExitCode, nil
		case "stdout":
			return res.Stdout, nil
		default:
			return res.Stderr, nil
		}
	}
	return nil, nil
}

// noteExec records an evaluated exec and computes its result once. It is a
// no-op returning the zero result for objects that are not withExec.
func (s *Server) noteExec(o *Obj) ExecResult {
	if o.Field != "withExec" {
		return ExecResult{}
	}
	if o.result == nil {
		var res ExecResult
		if s.ExecResult != nil {
			res = s.ExecResult(o)
		}
		o.result = &res
		s.execs = append(s.execs, o)
	}
	return *o.result
}
