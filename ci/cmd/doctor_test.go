package cmd

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
)

// doctorAPI is a recording fake of the GitHub endpoints ci doctor reads,
// under a non-root base path as go-github's own tests serve them. Each
// route answers the recorded JSON or an error status.
type doctorAPI struct {
	t      *testing.T
	routes map[string]string // path → JSON body, or "403"/"404"
	mu     sync.Mutex
	seen   []string
}

func (a *doctorAPI) server() *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/api-v3/", func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(a.t, http.MethodGet, r.Method, "ci doctor only reads")
		assert.Equal(a.t, "Bearer ghs_doctor", r.Header.Get("Authorization"))
		path := strings.TrimPrefix(r.URL.Path, "/api-v3")
		a.mu.Lock()
		a.seen = append(a.seen, path)
		a.mu.Unlock()
		body, ok := a.routes[path]
		switch {
		case !ok:
			a.t.Errorf("unexpected request %s", path)
			http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
		case body == "403":
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"message":"Resource not accessible by integration"}`))
		case body == "404":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"Not Found"}`))
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		}
	})
	srv := httptest.NewServer(mux)
	a.t.Cleanup(srv.Close)
	return srv
}

const (
	routeApproval = "/repos/o/r/actions/permissions/fork-pr-contributor-approval"
	routePerms    = "/repos/o/r/actions/permissions/workflow"
	routeRunners  = "/repos/o/r/actions/runners"
	routeOrgRun   = "/orgs/o/actions/runners"
	routeGroup    = "/orgs/o/actions/runner-groups/7"
	routeGroupRep = "/orgs/o/actions/runner-groups/7/repositories"
)

// goodRoutes answers every endpoint with the recorded JSON of a repository
// whose settings are all right (testdata/doctor).
func goodRoutes(t *testing.T) map[string]string {
	routes := map[string]string{}
	for route, file := range map[string]string{
		routeApproval: "fork-pr-contributor-approval.json", routePerms: "workflow-permissions.json",
		routeRunners: "repo-runners.json", routeOrgRun: "org-runners.json",
		routeGroup: "runner-group.json", routeGroupRep: "runner-group-repositories.json",
	} {
		data, err := os.ReadFile(filepath.Join("testdata", "doctor", file))
		require.NoError(t, err)
		routes[route] = string(data)
	}
	return routes
}

func TestDoctor(t *testing.T) {
	tests := []struct {
		name     string
		change   map[string]string
		wantCode int
		want     []string // lines that must appear
		notWant  []string
	}{
		{name: "all ok", wantCode: clierr.ExitOK, want: []string{
			"ok       fork-pr-approval", "ok       workflow-permissions", "ok       runner-group", "ok       ephemeral-runners     2 runners labelled intel-gpu, all ephemeral"},
			notWant: []string{"wrong", "fix:"}},
		{name: "wrong settings", wantCode: clierr.ExitFailed, change: map[string]string{
			routeApproval: `{"approval_policy":"first_time_contributors"}`,
			routePerms:    `{"default_workflow_permissions":"write","can_approve_pull_request_reviews":true}`,
			routeOrgRun:   `{"total_count":1,"runners":[{"id":1,"name":"gpu-1","runner_group_id":7,"labels":[{"name":"intel-gpu"}],"ephemeral":false}]}`,
			routeGroup:    `{"id":7,"name":"Default","visibility":"all","default":true,"restricted_to_workflows":false}`,
		}, want: []string{
			`wrong    fork-pr-approval      approval policy is "first_time_contributors"`,
			"fix: https://github.com/o/r/settings/actions → Fork pull request workflows from outside collaborators → Require approval for all external contributors",
			`wrong    workflow-permissions  default GITHUB_TOKEN permissions are "write"`,
			`wrong    runner-group          group "Default" is the default group`,
			`is visible to all repositories, not to o/r alone`, "is not restricted to selected workflows",
			"wrong    ephemeral-runners     not ephemeral: gpu-1",
			"fix: register the runners with --ephemeral (`ephemeral = true` in services.github-runners",
		}},
		{name: "group open to pull request refs and other repositories", wantCode: clierr.ExitFailed, change: map[string]string{
			routeGroup: `{"id":7,"name":"intel","visibility":"selected","restricted_to_workflows":true,
				"selected_workflows":["o/r/.github/workflows/ci.yml@refs/heads/main","o/r/.github/workflows/ci.yml@refs/pull/*","x/y/.github/workflows/a.yml@refs/heads/main"]}`,
			routeGroupRep: `{"total_count":2,"repositories":[{"full_name":"o/r"},{"full_name":"o/other"}]}`,
		}, want: []string{
			`wrong    runner-group          group "intel" also serves o/other`,
			"allows o/r/.github/workflows/ci.yml@refs/pull/*", "allows x/y/.github/workflows/a.yml@refs/heads/main",
		}},
		{name: "repository runners have no group", wantCode: clierr.ExitFailed, change: map[string]string{
			routeRunners: `{"total_count":1,"runners":[{"id":3,"name":"gpu-r","labels":[{"name":"intel-gpu"}],"ephemeral":true}]}`,
			routeOrgRun:  `{"total_count":0,"runners":[]}`,
		}, want: []string{"wrong    runner-group          1 runners labelled intel-gpu are registered to the repository itself", "ok       ephemeral-runners"}},
		{name: "token cannot read", wantCode: clierr.ExitOK, change: map[string]string{
			routeApproval: "403", routePerms: "403", routeRunners: "403", routeOrgRun: "404",
		}, want: []string{
			"unknown  fork-pr-approval      the token may not read this (403", "unknown  workflow-permissions  the token may not read this",
			"unknown  runner-group          no organization runner labelled intel-gpu found", "organization runners: not found (404)",
			"unknown  ephemeral-runners     repository runners: the token may not read this",
		}, notWant: []string{"ghs_doctor"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			routes := goodRoutes(t)
			for k, v := range tt.change {
				routes[k] = v
			}
			api := &doctorAPI{t: t, routes: routes}
			srv := api.server()
			io, out, errb := testIO(map[string]string{"GITHUB_TOKEN": "ghs_doctor", "GITHUB_REPOSITORY": "o/r", "GITHUB_API_URL": srv.URL + "/api-v3"})
			code := Run(t.Context(), io, []string{"doctor"})
			assert.Equal(t, tt.wantCode, code, out.String()+errb.String())
			for _, w := range tt.want {
				assert.Contains(t, out.String(), w)
			}
			for _, w := range tt.notWant {
				assert.NotContains(t, out.String()+errb.String(), w)
			}
			seen := append([]string(nil), api.seen...)
			sort.Strings(seen)
			assert.Contains(t, seen, routeApproval)
			assert.Contains(t, seen, routePerms)
			assert.Contains(t, seen, routeRunners)
			assert.Contains(t, seen, routeOrgRun)
		})
	}
}

func TestDoctorUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no repository", map[string]string{"GITHUB_TOKEN": "x"}, "pass --repo owner/name"},
		{"no token", map[string]string{"GITHUB_REPOSITORY": "o/r"}, "set GITHUB_TOKEN"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			io, _, errb := testIO(tt.env)
			require.Equal(t, clierr.ExitUsage, Run(t.Context(), io, []string{"doctor"}))
			assert.Contains(t, errb.String(), tt.want)
		})
	}
}
