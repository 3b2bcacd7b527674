package workflows

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/rhysd/actionlint"
)

// Truth is the three-valued truthiness of an expression under a partly known
// context.
type Truth int

const (
	// Unknown means the value depends on something the context does not fix.
	Unknown Truth = iota
	// False means the expression is falsy whatever the unknown parts are.
	False
	// True means the expression is truthy whatever the unknown parts are.
	True
)

func (t Truth) String() string {
	switch t {
	case True:
		return "true"
	case False:
		return "false"
	}
	return "unknown"
}

// Context holds the known values of expression contexts, as nested maps:
// Context{"github": map[string]any{"event_name": "pull_request"}}. Leaves are
// string, float64, bool or nil; anything absent is unknown.
type Context map[string]any

// ForkPullRequest is the context of a pull request from a fork of
// ipex-flake/ipex-flake: what GitHub sets for event, repository and refs.
func ForkPullRequest(event string) Context {
	return pullRequestContext(event, "contributor/ipex-flake", true)
}

// SameRepoPullRequest is the context of a pull request from a branch of the
// repository itself.
func SameRepoPullRequest(event string) Context {
	return pullRequestContext(event, "ipex-flake/ipex-flake", false)
}

func pullRequestContext(event, head string, fork bool) Context {
	return Context{"github": map[string]any{
		"event_name":       event,
		"repository":       "ipex-flake/ipex-flake",
		"repository_owner": "ipex-flake",
		"ref":              "refs/pull/7/merge",
		"ref_name":         "7/merge",
		"ref_type":         "branch",
		"head_ref":         "feature",
		"base_ref":         "main",
		"event": map[string]any{"pull_request": map[string]any{
			"number": 7.0,
			"head": map[string]any{
				"ref": "feature",
				"repo": map[string]any{
					"full_name": head,
					"fork":      fork,
					"owner":     map[string]any{"login": strings.SplitN(head, "/", 2)[0]},
				},
			},
			"base": map[string]any{"ref": "main", "repo": map[string]any{"full_name": "ipex-flake/ipex-flake"}},
		}},
	}}
}

// PushToMain is the context of a push to the main branch.
func PushToMain() Context {
	return Context{"github": map[string]any{
		"event_name":       "push",
		"repository":       "ipex-flake/ipex-flake",
		"repository_owner": "ipex-flake",
		"ref":              "refs/heads/main",
		"ref_name":         "main",
		"ref_type":         "branch",
		"head_ref":         "",
		"base_ref":         "",
	}}
}

// EvalCondition evaluates an `if:` condition (with or without `${{ }}`)
// under ctx. An empty condition is true. Status functions (success(),
// always()) count as true: the question is whether the job can run at all.
func EvalCondition(cond string, ctx Context) (Truth, error) {
	src := strings.TrimSpace(cond)
	if src == "" {
		return True, nil
	}
	if strings.HasPrefix(src, "${{") && strings.HasSuffix(src, "}}") {
		src = strings.TrimSpace(src[3 : len(src)-2])
	}
	node, err := actionlint.NewExprParser().Parse(actionlint.NewExprLexer(src + "}}"))
	if err != nil {
		return Unknown, fmt.Errorf("parse %q: %s", cond, err.Message)
	}
	return eval(node, ctx).truth(), nil
}

// value is an expression value; known is false when it depends on something
// the context leaves open. t is its truthiness, which can be fixed even when
// the value is not (for example `unknown && false`).
type value struct {
	known bool
	v     any // nil, bool, float64, string, map[string]any
	t     Truth
}

func (v value) truth() Truth {
	if !v.known {
		return v.t
	}
	switch x := v.v.(type) {
	case nil:
		return False
	case bool:
		return boolTruth(x)
	case float64:
		return boolTruth(x != 0 && !math.IsNaN(x))
	case string:
		return boolTruth(x != "")
	}
	return True
}

func boolTruth(b bool) Truth {
	if b {
		return True
	}
	return False
}

func known(v any) value { return value{known: true, v: v} }

var unknown = value{}

func eval(n actionlint.ExprNode, ctx Context) value {
	switch n := n.(type) {
	case *actionlint.NullNode:
		return known(nil)
	case *actionlint.BoolNode:
		return known(n.Value)
	case *actionlint.IntNode:
		return known(float64(n.Value))
	case *actionlint.FloatNode:
		return known(n.Value)
	case *actionlint.StringNode:
		return known(n.Value)
	case *actionlint.VariableNode:
		if v, ok := ctx[strings.ToLower(n.Name)]; ok {
			return known(v)
		}
		return unknown
	case *actionlint.ObjectDerefNode:
		return property(eval(n.Receiver, ctx), n.Property)
	case *actionlint.IndexAccessNode:
		idx := eval(n.Index, ctx)
		if s, ok := idx.v.(string); ok && idx.known {
			return property(eval(n.Operand, ctx), s)
		}
		return unknown
	case *actionlint.NotOpNode:
		switch eval(n.Operand, ctx).truth() {
		case True:
			return known(false)
		case False:
			return known(true)
		}
		return unknown
	case *actionlint.LogicalOpNode:
		l, r := eval(n.Left, ctx), eval(n.Right, ctx)
		and := n.Kind == actionlint.LogicalOpNodeKindAnd
		switch lt := l.truth(); {
		case lt == False && and, lt == True && !and:
			return l
		case lt != Unknown:
			return r
		}
		// The left side is open: the result is l or r, so only a right side
		// that decides the operator fixes the truth.
		if rt := r.truth(); (and && rt == False) || (!and && rt == True) {
			return value{t: rt}
		}
		return unknown
	case *actionlint.CompareOpNode:
		l, r := eval(n.Left, ctx), eval(n.Right, ctx)
		if !l.known || !r.known {
			return unknown
		}
		return compare(n.Kind, l.v, r.v)
	case *actionlint.FuncCallNode:
		return call(n, ctx)
	}
	return unknown
}

func property(recv value, name string) value {
	if !recv.known {
		return unknown
	}
	m, ok := recv.v.(map[string]any)
	if !ok {
		return known(nil)
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return known(v)
		}
	}
	return unknown
}

func call(n *actionlint.FuncCallNode, ctx Context) value {
	args := make([]value, len(n.Args))
	for i, a := range n.Args {
		args[i] = eval(a, ctx)
	}
	callee := strings.ToLower(n.Callee)
	switch callee {
	case "success", "always":
		return known(true)
	case "fromjson":
		if len(args) != 1 || !args[0].known {
			return unknown
		}
		var v any
		if json.Unmarshal([]byte(toString(args[0].v)), &v) != nil {
			return unknown
		}
		return known(v)
	case "contains", "startswith", "endswith":
		if len(args) != 2 || !args[0].known || !args[1].known {
			return unknown
		}
		if list, ok := args[0].v.([]any); ok && callee == "contains" {
			for _, e := range list {
				if compare(actionlint.CompareOpNodeKindEq, e, args[1].v).v == true {
					return known(true)
				}
			}
			return known(false)
		}
		s, sub := strings.ToLower(toString(args[0].v)), strings.ToLower(toString(args[1].v))
		switch callee {
		case "contains":
			return known(strings.Contains(s, sub))
		case "startswith":
			return known(strings.HasPrefix(s, sub))
		}
		return known(strings.HasSuffix(s, sub))
	}
	return unknown
}

// compare follows GitHub's rules: strings compare case-insensitively;
// values of different types are compared as numbers.
func compare(kind actionlint.CompareOpNodeKind, l, r any) value {
	ls, lok := l.(string)
	rs, rok := r.(string)
	if lok && rok {
		c := strings.Compare(strings.ToLower(ls), strings.ToLower(rs))
		return known(cmpResult(kind, c))
	}
	if l == nil && r == nil {
		return known(cmpResult(kind, 0))
	}
	ln, rn := toNumber(l), toNumber(r)
	if math.IsNaN(ln) || math.IsNaN(rn) {
		return known(kind == actionlint.CompareOpNodeKindNotEq)
	}
	c := 0
	if ln < rn {
		c = -1
	} else if ln > rn {
		c = 1
	}
	return known(cmpResult(kind, c))
}

func cmpResult(kind actionlint.CompareOpNodeKind, c int) bool {
	switch kind {
	case actionlint.CompareOpNodeKindEq:
		return c == 0
	case actionlint.CompareOpNodeKindNotEq:
		return c != 0
	case actionlint.CompareOpNodeKindLess:
		return c < 0
	case actionlint.CompareOpNodeKindLessEq:
		return c <= 0
	case actionlint.CompareOpNodeKindGreater:
		return c > 0
	case actionlint.CompareOpNodeKindGreaterEq:
		return c >= 0
	}
	return false
}

func toNumber(v any) float64 {
	switch x := v.(type) {
	case nil:
		return 0
	case bool:
		if x {
			return 1
		}
		return 0
	case float64:
		return x
	case string:
		if strings.TrimSpace(x) == "" {
			return 0
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return math.NaN()
		}
		return f
	}
	return math.NaN()
}

func toString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

// EvalValue evaluates an expression (with or without `${{ }}`) under ctx and
// returns its value when the context fixes it; ok is false otherwise.
// fromJSON of a known string is decoded.
func EvalValue(expr string, ctx Context) (v any, ok bool, err error) {
	src := strings.TrimSpace(expr)
	if strings.HasPrefix(src, "${{") && strings.HasSuffix(src, "}}") {
		src = strings.TrimSpace(src[3 : len(src)-2])
	}
	node, perr := actionlint.NewExprParser().Parse(actionlint.NewExprLexer(src + "}}"))
	if perr != nil {
		return nil, false, fmt.Errorf("parse %q: %s", expr, perr.Message)
	}
	val := eval(node, ctx)
	return val.v, val.known, nil
}

// WorkflowDispatch is the context of a run started by hand from any ref.
func WorkflowDispatch() Context {
	return Context{"github": map[string]any{
		"event_name":       "workflow_dispatch",
		"repository":       "ipex-flake/ipex-flake",
		"repository_owner": "ipex-flake",
	}}
}

// TagPush is the context of a pushed tag.
func TagPush(tag string) Context {
	return Context{"github": map[string]any{
		"event_name":       "push",
		"repository":       "ipex-flake/ipex-flake",
		"repository_owner": "ipex-flake",
		"ref":              "refs/tags/" + tag,
		"ref_name":         tag,
		"ref_type":         "tag",
	}}
}
