package fakedagger

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"dagger.io/dagger"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// post sends one GraphQL query the way the SDK does and decodes the answer.
func post(t *testing.T, s *Server, token, query string, vars map[string]any) (int, response) {
	t.Helper()
	body, err := json.Marshal(request{Query: query, Variables: vars, OperationName: "Query"})
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/query", bytes.NewReader(body))
	require.NoError(t, err)
	req.SetBasicAuth(token, "")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out response
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	}
	return resp.StatusCode, out
}

func TestServeRejectsBadRequests(t *testing.T) {
	s := New(t)
	code, _ := post(t, s, "wrong", `{container{id}}`, nil)
	assert.Equal(t, http.StatusUnauthorized, code)

	resp, err := http.Get(s.URL + "/query")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	resp, err = http.Post(s.URL+"/other", "application/json", bytes.NewReader(nil))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	code, out := post(t, s, Token, `{container{`, nil)
	assert.Equal(t, http.StatusOK, code)
	require.Len(t, out.Errors, 1)
	assert.Contains(t, out.Errors[0].Message, "parse query")
}

func TestChainsIDsAndExecs(t *testing.T) {
	s := New(t)
	s.ExecResult = func(exec *Obj) ExecResult {
		if exec.Strings("args")[0] == "false" {
			return ExecResult{ExitCode: 1, Stderr: "nope"}
		}
		return ExecResult{Stdout: "ok"}
	}

	_, out := post(t, s, Token, `query Query($a: String!) {container{from(address:$a){withExec(args:["false"], expect:ANY){sync}}}}`, map[string]any{"a": "alpine"})
	require.Empty(t, out.Errors)
	id := out.Data.(map[string]any)["container"].(map[string]any)["from"].(map[string]any)["withExec"].(map[string]any)["sync"].(string)
	obj := s.Resolve(id)
	require.NotNil(t, obj)
	assert.Equal(t, `container.from(address:"alpine").withExec(args:["false"], expect:"ANY")`, obj.String())
	assert.Equal(t, "alpine", obj.Find("from").Str("address"), "variables are resolved")

	_, out = post(t, s, Token, `{node(id:"`+id+`"){... on Container{code:exitCode stderr}} loadContainerFromID(id:"`+id+`"){withExec(args:["true"]){stdout}}}`, nil)
	require.Empty(t, out.Errors)
	data := out.Data.(map[string]any)
	assert.Equal(t, map[string]any{"code": float64(1), "stderr": "nope"}, data["node"])
	assert.Equal(t, "ok", data["loadContainerFromID"].(map[string]any)["withExec"].(map[string]any)["stdout"])

	execs := s.Execs()
	require.Len(t, execs, 2)
	assert.Same(t, obj, execs[0])
	assert.Same(t, obj, execs[1].Parent, "a chain continued from an ID extends the object it denotes")
	assert.Len(t, execs[1].FindAll("withExec"), 2)
	assert.Len(t, s.Queries(), 2)
}

func TestErrors(t *testing.T) {
	s := New(t)
	_, out := post(t, s, Token, `{node(id:"unknown"){... on Container{id}}}`, nil)
	require.Len(t, out.Errors, 1)
	assert.Contains(t, out.Errors[0].Message, "unknown id")

	_, out = post(t, s, Token, `{container{exitCode}}`, nil)
	require.Len(t, out.Errors, 1)
	assert.Contains(t, out.Errors[0].Message, "no command was executed")

	s.FailOn("from", "pull access denied")
	_, out = post(t, s, Token, `{container{from(address:"x"){id}}}`, nil)
	require.Len(t, out.Errors, 1)
	assert.Equal(t, "pull access denied", out.Errors[0].Message)
}

// TestSDK checks that the real SDK reaches the fake through the session
// environment variables and reads what the fake answers.
func TestSDK(t *testing.T) {
	s := New(t)
	s.Setenv(t)
	s.ExecResult = func(*Obj) ExecResult { return ExecResult{ExitCode: 7, Stdout: "hi"} }
	c, err := dagger.Connect(t.Context())
	require.NoError(t, err)
	defer c.Close()

	ctr, err := c.Container().From("alpine").
		WithMountedCache("/cache", c.CacheVolume("v"), dagger.ContainerWithMountedCacheOpts{Sharing: dagger.CacheSharingModeLocked}).
		WithExec([]string{"echo", "hi"}, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny}).
		Sync(t.Context())
	require.NoError(t, err)
	code, err := ctr.ExitCode(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 7, code)
	out, err := ctr.Stdout(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "hi", out)

	execs := s.Execs()
	require.Len(t, execs, 1)
	m := execs[0].Find("withMountedCache")
	require.NotNil(t, m)
	assert.Equal(t, "LOCKED", m.Args["sharing"])
	vol := s.Resolve(m.Str("cache"))
	require.NotNil(t, vol)
	assert.Equal(t, `cacheVolume(key:"v")`, vol.String())
}

// TestStall: a stalled engine holds every request until its client gives up.
func TestStall(t *testing.T) {
	s := New(t)
	s.Stall(t)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/query", strings.NewReader(`{"query":"{version}"}`))
	require.NoError(t, err)
	req.SetBasicAuth(Token, "")
	_, err = http.DefaultClient.Do(req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 1, s.Held())
	assert.Empty(t, s.Calls(), "nothing was answered")
}

func TestHostPath(t *testing.T) {
	s := New(t)
	_, resp := post(t, s, Token, `{ host { file(path: "/tmp/image.tar") { id } directory(path: "/src") { id } } }`, nil)
	require.Empty(t, resp.Errors)
	host := resp.Data.(map[string]any)["host"].(map[string]any)
	fileID := host["file"].(map[string]any)["id"].(string)
	dirID := host["directory"].(map[string]any)["id"].(string)
	assert.Equal(t, "/tmp/image.tar", s.HostPath(fileID, "file"))
	assert.Equal(t, "/src", s.HostPath(dirID, "directory"))
	assert.Contains(t, s.HostPath(dirID, "file"), "not host.file")
	assert.Contains(t, s.HostPath("unknown", "file"), "no object")
}
