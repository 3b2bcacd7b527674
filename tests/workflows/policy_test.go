package workflows

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v4"
)

// repoRoot is the repository root, two levels above this package.
const repoRoot = "../.."

// workflowFiles lists the repository's workflow files.
func workflowFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"*.yml", "*.yaml"} {
		m, err := filepath.Glob(filepath.Join(repoRoot, ".github", "workflows", pat))
		require.NoError(t, err)
		files = append(files, m...)
	}
	require.NotEmpty(t, files, "no workflow files in .github/workflows")
	return files
}

func checkFile(t *testing.T, path string) []Violation {
	t.Helper()
	src, err := os.ReadFile(path)
	require.NoError(t, err)
	vs, err := Check(filepath.Base(path), src)
	require.NoError(t, err)
	return vs
}

func TestRepositoryWorkflowsKeepThePolicy(t *testing.T) {
	for _, f := range workflowFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			vs := checkFile(t, f)
			assert.Empty(t, vs, "policy violations:\n%s", joinViolations(vs))
		})
	}
}

// TestPolicyFixtures proves each rule fails when it is broken: every bad
// fixture breaks exactly one rule, the good one none.
func TestPolicyFixtures(t *testing.T) {
	tests := []struct {
		file string
		want string // the one rule broken; "" for none
	}{
		{"good.yml", ""},
		{"unpinned-tag.yml", RulePinned},
		{"unpinned-short-sha.yml", RulePinned},
		{"unpinned-reusable.yml", RulePinned},
		{"no-version-comment.yml", RuleVersionComment},
		{"prt-checkout-head.yml", RulePRTargetCheckout},
		{"prt-run-head.yml", RulePRTargetCheckout},
		{"fork-self-hosted.yml", RuleForkSelfHosted},
		{"fork-self-hosted-weak-if.yml", RuleForkSelfHosted},
		{"fork-matrix-runs-on.yml", RuleForkSelfHosted},
		{"fork-secrets.yml", RuleForkSecrets},
		{"fork-secrets-weak-step-if.yml", RuleForkSecrets},
		{"no-top-permissions.yml", RuleTopPermissions},
		{"top-permissions-granted.yml", RuleTopPermissions},
		{"contents-write-build.yml", RuleLeastPrivilege},
		{"write-all.yml", RuleLeastPrivilege},
		{"no-timeout.yml", RuleTimeout},
		{"stage-timeout.yml", RuleStageTimeout},
		{"promotion-no-concurrency.yml", RulePromotionConcurrency},
		{"promotion-cancelled.yml", RulePromotionConcurrency},
		{"promotion-waits-for-approval.yml", RulePromotionConcurrency},
		{"stable-no-environment.yml", RuleStableApproval},
		{"stable-no-approver.yml", RuleStableApproval},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			vs := checkFile(t, filepath.Join("testdata", tt.file))
			if tt.want == "" {
				assert.Empty(t, vs, joinViolations(vs))
				return
			}
			require.NotEmpty(t, vs, "%s breaks %s but passed", tt.file, tt.want)
			for _, v := range vs {
				assert.Equal(t, tt.want, v.Rule, "unexpected violation: %s", v)
				assert.Positive(t, v.Line, "violation without a line: %s", v)
			}
			seen[tt.want] = true
		})
	}
	// Every rule has a fixture that breaks it.
	for _, r := range []string{RulePinned, RuleVersionComment, RulePRTargetCheckout, RuleForkSelfHosted,
		RuleForkSecrets, RuleTopPermissions, RuleLeastPrivilege, RuleTimeout, RuleStageTimeout,
		RulePromotionConcurrency, RuleStableApproval} {
		assert.True(t, seen[r], "no fixture breaks rule %s", r)
	}
}

func TestCheckRejectsNonWorkflows(t *testing.T) {
	for _, src := range []string{"", "- a list\n", "a: [unclosed\n"} {
		_, err := Check("x.yml", []byte(src))
		assert.Error(t, err, "%q", src)
	}
}

// workflow is the part of a workflow file the structure tests read.
type workflow struct {
	On   map[string]any `yaml:"on"`
	Jobs map[string]struct {
		If          string         `yaml:"if"`
		Needs       any            `yaml:"needs"`
		RunsOn      any            `yaml:"runs-on"`
		Timeout     any            `yaml:"timeout-minutes"`
		Environment any            `yaml:"environment"`
		Permissions map[string]any `yaml:"permissions"`
		Steps       []struct {
			Uses string            `yaml:"uses"`
			Run  string            `yaml:"run"`
			With map[string]any    `yaml:"with"`
			Env  map[string]string `yaml:"env"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

func readWorkflow(t *testing.T, name string) workflow {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot, ".github", "workflows", name))
	require.NoError(t, err)
	var w workflow
	require.NoError(t, yaml.Unmarshal(src, &w))
	return w
}

func (w workflow) runs(job string) string {
	var b strings.Builder
	for _, s := range w.Jobs[job].Steps {
		b.WriteString(s.Run)
		b.WriteString("\n")
	}
	return b.String()
}

func TestCIWorkflowShape(t *testing.T) {
	w := readWorkflow(t, "ci.yml")
	assert.Contains(t, w.On, "pull_request")
	assert.Contains(t, w.On, "push")
	assert.NotContains(t, w.On, "pull_request_target")

	assert.Contains(t, w.runs("build"), "go run ./ci build")
	assert.Contains(t, w.runs("unit"), "go run ./ci test --stage unit")
	assert.Contains(t, w.runs("security"), "go run ./ci test --stage security")
	assert.Contains(t, w.runs("plan"), "go run ./ci matrix")
	assert.Contains(t, w.runs("push"), "go run ./ci push")
	assert.Contains(t, w.runs("promote-dev"), "go run ./ci release promote --to dev")

	// The GPU stages: runners from `ci matrix`, never for forks, always for
	// pushes to main and pull requests from this repository's branches.
	gpu := w.Jobs["gpu"]
	assert.Equal(t, "${{ matrix.runs-on }}", gpu.RunsOn)
	assert.Equal(t, "${{ matrix.timeout-minutes }}", gpu.Timeout)
	assertRunsOnlyWhenTrusted(t, gpu.If, true)
	assertRunsOnlyWhenTrusted(t, w.Jobs["plan"].If, true)

	// Cache push and dev promotion: pushes to main only.
	for _, job := range []string{"push", "promote-dev"} {
		assertRunsOnlyWhenTrusted(t, w.Jobs[job].If, false)
	}
	// Stages GitHub-hosted for everyone, forks included.
	for _, job := range []string{"build", "unit", "security"} {
		assert.Empty(t, w.Jobs[job].If, job)
		assert.Equal(t, "ubuntu-24.04", w.Jobs[job].RunsOn, job)
	}
}

// assertRunsOnlyWhenTrusted checks cond under each kind of event:
// false for a fork, true for a push to main, and for a same-repository pull
// request as sameRepoPR says.
func assertRunsOnlyWhenTrusted(t *testing.T, cond string, sameRepoPR bool) {
	t.Helper()
	got, err := EvalCondition(cond, ForkPullRequest("pull_request"))
	require.NoError(t, err)
	assert.Equal(t, False, got, "fork pull request: %q", cond)
	got, err = EvalCondition(cond, PushToMain())
	require.NoError(t, err)
	assert.Equal(t, True, got, "push to main: %q", cond)
	got, err = EvalCondition(cond, SameRepoPullRequest("pull_request"))
	require.NoError(t, err)
	assert.Equal(t, boolTruth(sameRepoPR), got, "same-repository pull request: %q", cond)
}

func TestReleaseWorkflowShape(t *testing.T) {
	w := readWorkflow(t, "release.yml")
	require.Contains(t, w.On, "push")
	assert.Equal(t, map[string]any{"tags": []any{"phase*-complete"}}, w.On["push"])
	assert.Contains(t, w.On, "workflow_dispatch")

	for _, stage := range []string{"unit", "security"} {
		assert.Contains(t, w.runs(stage), "go run ./ci test --stage "+stage)
	}
	assert.Contains(t, w.runs("plan"), "go run ./ci matrix")
	assert.Contains(t, w.runs("push"), "go run ./ci push")
	assert.Contains(t, w.runs("beta"), "go run ./ci release promote --to beta")

	// The approval (environment with required reviewers) is its own job, so
	// the promotion waits for no reviewer inside the promotion group.
	assert.Equal(t, "stable", w.Jobs["approve-stable"].Environment)
	assert.Equal(t, "beta", w.Jobs["approve-stable"].Needs)
	assert.Contains(t, w.runs("approve-stable"), "/approvals")
	stable := w.Jobs["stable"]
	assert.Nil(t, stable.Environment)
	assert.Equal(t, "approve-stable", stable.Needs)
	assert.Contains(t, w.runs("stable"), "go run ./ci release promote --to stable")
	assert.Contains(t, w.runs("stable"), `--approved-by "$CI_APPROVED_BY"`)
	assert.Equal(t, "${{ needs.approve-stable.outputs.approved-by }}", stable.Steps[len(stable.Steps)-1].Env["CI_APPROVED_BY"])

	// The full suite gates the beta promotion.
	needs := w.Jobs["push"].Needs.([]any)
	for _, j := range []string{"build", "unit", "security", "gpu"} {
		assert.Contains(t, needs, j)
	}
}

// TestSecretsOnlyInTheStepsThatNeedThem: each project secret appears only as
// a step's env, and only in the steps that call the command needing it.
func TestSecretsOnlyInTheStepsThatNeedThem(t *testing.T) {
	need := map[string][]string{
		"NIX_SIGNING_KEY":   {"go run ./ci push"},
		"CACHIX_AUTH_TOKEN": {"go run ./ci push"},
		// Promotions and failed stages are announced on Slack.
		"SLACK_BOT_TOKEN": {"go run ./ci release promote", "go run ./ci test"},
	}
	for _, f := range workflowFiles(t) {
		w := readWorkflow(t, filepath.Base(f))
		for name, job := range w.Jobs {
			for _, s := range job.Steps {
				for k, v := range s.Env {
					if !strings.Contains(v, "secrets.") {
						continue
					}
					cmds, ok := need[k]
					if assert.True(t, ok, "%s job %s: unexpected secret env %s", filepath.Base(f), name, k) {
						assert.True(t, slices.ContainsFunc(cmds, func(c string) bool { return strings.Contains(s.Run, c) }),
							"%s job %s: %s given to a step that runs none of %v", filepath.Base(f), name, k, cmds)
						assert.Equal(t, "${{ secrets."+k+" }}", v)
					}
				}
				for k, v := range s.With {
					assert.NotContains(t, fmt.Sprint(v), "secrets.", "%s job %s: secret passed as input %s", filepath.Base(f), name, k)
				}
			}
		}
	}
}

// TestToolchainSetup: Go from setup-go with module caching and go.mod's
// version, Nix from install-nix-action, in every job that runs the pipeline
// on a GitHub-hosted runner.
func TestToolchainSetup(t *testing.T) {
	for _, f := range workflowFiles(t) {
		w := readWorkflow(t, filepath.Base(f))
		for name, job := range w.Jobs {
			var goSetup, nixSetup bool
			for _, s := range job.Steps {
				switch {
				case strings.HasPrefix(s.Uses, "actions/setup-go@"):
					goSetup = true
					assert.Equal(t, "go.mod", s.With["go-version-file"], "%s %s", f, name)
					assert.Equal(t, true, s.With["cache"], "%s %s", f, name)
				case strings.HasPrefix(s.Uses, "cachix/install-nix-action@"):
					nixSetup = true
				}
			}
			if strings.Contains(w.runs(name), "go run ./ci") {
				assert.True(t, goSetup, "%s job %s runs ./ci without setup-go", filepath.Base(f), name)
			}
			needsNix := slices.ContainsFunc([]string{"./ci build", "./ci push", "--stage unit", "--stage security"},
				func(s string) bool { return strings.Contains(w.runs(name), s) })
			if needsNix {
				assert.True(t, nixSetup, "%s job %s needs nix but does not install it", filepath.Base(f), name)
			}
		}
	}
}

func joinViolations(vs []Violation) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString(v.String())
		b.WriteString("\n")
	}
	return b.String()
}
