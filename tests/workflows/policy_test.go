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
// fixture breaks exactly one rule, the good one none. Fixtures are files in
// testdata, or good.yml with one change that breaks one rule.
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
		{"fork-self-hosted.yml", RulePRSelfHosted},
		{"fork-self-hosted-weak-if.yml", RulePRSelfHosted},
		{"fork-matrix-runs-on.yml", RulePRSelfHosted},
		{"fork-secrets.yml", RuleForkSecrets},
		{"fork-secrets-weak-step-if.yml", RuleForkSecrets},
		{"no-top-permissions.yml", RuleTopPermissions},
		{"top-permissions-granted.yml", RuleTopPermissions},
		{"contents-write-build.yml", RuleLeastPrivilege},
		{"write-all.yml", RuleLeastPrivilege},
		{"no-timeout.yml", RuleTimeout},
		{"stage-timeout.yml", RuleStageTimeout},
	}
	seen := map[string]bool{}
	check := func(t *testing.T, name string, vs []Violation, want string) {
		if want == "" {
			assert.Empty(t, vs, joinViolations(vs))
			return
		}
		require.NotEmpty(t, vs, "%s breaks %s but passed", name, want)
		for _, v := range vs {
			assert.Equal(t, want, v.Rule, "unexpected violation: %s", v)
			assert.Positive(t, v.Line, "violation without a line: %s", v)
		}
		seen[want] = true
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			check(t, tt.file, checkFile(t, filepath.Join("testdata", tt.file)), tt.want)
		})
	}

	good, err := os.ReadFile(filepath.Join("testdata", "good.yml"))
	require.NoError(t, err)
	for _, m := range goodMutations {
		t.Run(m.name, func(t *testing.T) {
			require.Contains(t, string(good), m.old, "good.yml changed: %s no longer applies", m.name)
			src := strings.Replace(string(good), m.old, m.new, 1)
			vs, err := Check(m.name+".yml", []byte(src))
			require.NoError(t, err)
			check(t, m.name, vs, m.want)
		})
	}

	// Every rule has a fixture that breaks it.
	for _, r := range []string{RulePinned, RuleVersionComment, RulePRTargetCheckout, RulePRSelfHosted,
		RuleForkSecrets, RuleTopPermissions, RuleLeastPrivilege, RuleTimeout, RuleStageTimeout,
		RulePromotionConcurrency, RuleStableApproval, RulePromotionNeeds, RuleReleaseRef, RuleGoTests,
		RuleNoRebuild, RulePRResultsOnHead, RuleDaggerPinned, RuleStagingKey} {
		assert.True(t, seen[r], "no fixture breaks rule %s", r)
	}
}

// goodMutations each break one rule of good.yml by one textual change.
var goodMutations = []struct {
	name, old, new, want string
}{
	// Self-hosted runners and pull requests: a same-repository guard is not
	// enough, the workflow file comes from the pull request.
	{"self-hosted-same-repo-pr",
		"    if: github.event_name != 'pull_request'\n    runs-on: [self-hosted",
		"    if: github.event_name == 'push' || github.event.pull_request.head.repo.full_name == github.repository\n    runs-on: [self-hosted", RulePRSelfHosted},
	{"build-runs-on-vars-for-pull-requests",
		"runs-on: ${{ github.event_name == 'pull_request' && 'ubuntu-24.04' || fromJSON(vars.BUILD_RUNS_ON || '\"ubuntu-24.04\"') }}",
		"runs-on: ${{ fromJSON(vars.BUILD_RUNS_ON || '\"ubuntu-24.04\"') }}", RulePRSelfHosted},
	// Promotions: their channel's group, never cancelled, no reviewer wait
	// inside the group.
	{"promotion-no-concurrency", "    concurrency:\n      group: promote-dev\n      cancel-in-progress: false\n", "", RulePromotionConcurrency},
	{"promotion-cancelled", "      group: promote-dev\n      cancel-in-progress: false", "      group: promote-dev\n      cancel-in-progress: true", RulePromotionConcurrency},
	{"promotion-one-group-for-all", "group: promote-stable-${{ github.sha }}", "group: promotion", RulePromotionConcurrency},
	{"stable-group-not-per-commit", "group: promote-stable-${{ github.sha }}", "group: promote-stable", RulePromotionConcurrency},
	{"promotion-waits-for-approval",
		"  stable:\n    needs: [approve]\n    if: github.event_name != 'pull_request'\n    runs-on: ubuntu-24.04\n",
		"  stable:\n    needs: [approve]\n    if: github.event_name != 'pull_request'\n    environment: stable\n    runs-on: ubuntu-24.04\n", RulePromotionConcurrency},
	// Stable approval.
	{"stable-no-environment", "    environment: stable\n", "", RuleStableApproval},
	{"stable-no-approver", `--to stable --approved-by "$GITHUB_ACTOR"`, "--to stable", RuleStableApproval},
	// Promotions need the stage jobs of the same run, and nothing lets a
	// failed one through.
	{"stable-without-gpu-stages", "    needs: [go, unit, security, gpu]\n", "    needs: [go, unit, security]\n", RulePromotionNeeds},
	{"stable-always", "    needs: [approve]\n    if: github.event_name != 'pull_request'\n", "    needs: [approve]\n    if: always() && github.event_name != 'pull_request'\n", RulePromotionNeeds},
	{"stage-continue-on-error", "  unit:\n    needs: build\n", "  unit:\n    needs: build\n    continue-on-error: true\n", RulePromotionNeeds},
	// Releases start from main or a phase tag on it.
	{"release-without-ref-check", "    needs: [ref, push]\n", "    needs: [push]\n", RuleReleaseRef},
	// The Go tests run, and the pipeline needs them.
	{"no-race", "      - run: bash .ci/run -race\n", "      - run: bash .ci/run\n", RuleGoTests},
	{"build-without-go", "  build:\n    needs: go\n", "  build:\n", RuleGoTests},
	// Nothing after the build builds; builds for pushes fill the staging cache.
	{"push-rebuilds", `      - run: go run ./ci push --from "$STAGING"`, "      - run: go run ./ci build\n      - run: go run ./ci push", RuleNoRebuild},
	{"build-without-staging", `go run ./ci build --shard 1/1 --push-to "$STAGING"`, "go run ./ci build --shard 1/1", RuleNoRebuild},
	// The push checks the staging cache's signatures.
	{"push-without-staging-key", "          NIX_STAGING_PUBLIC_KEY: ${{ vars.NIX_STAGING_PUBLIC_KEY }}\n", "", RuleStagingKey},
	{"push-unsigned", `      - run: go run ./ci push --from "$STAGING"`, `      - run: go run ./ci push --from "$STAGING" --allow-unsigned-from`, RuleStagingKey},
	// A pull request's results go on its head commit.
	{"results-on-merge-commit", "      - run: go run ./ci test --stage unit\n", "      - run: go run ./ci test --stage unit --rev \"$GITHUB_SHA\"\n", RulePRResultsOnHead},
	{"results-github-sha-overridden", "      - run: go run ./ci test --stage security\n",
		"      - run: go run ./ci test --stage security\n        env:\n          GITHUB_SHA: ${{ github.event.pull_request.head.sha }}\n", RulePRResultsOnHead},
	// The dagger CLI: a pinned version, a checked checksum, no pipe to sh.
	{"dagger-unchecked", `          echo "${SUM}  dagger_v${DAGGER_VERSION}_linux_amd64.tar.gz" | sha256sum --check --strict`, "          tar -xzf dagger.tar.gz", RuleDaggerPinned},
	{"dagger-install-script", `          curl -fsSLO "https://github.com/dagger/dagger/releases/download/v${DAGGER_VERSION}/dagger_v${DAGGER_VERSION}_linux_amd64.tar.gz"`,
		"          curl -fsSL https://dl.dagger.io/dagger/install.sh | sh", RuleDaggerPinned},
	{"dagger-unversioned", "      DAGGER_VERSION: 0.21.9", "      DAGGER_VERSION: latest", RuleDaggerPinned},
	// Least privilege for the flake.lock pull request.
	{"pull-requests-write-elsewhere", "    permissions:\n      contents: write\n    steps:\n      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2\n      - run: go run ./ci release promote --to dev",
		"    permissions:\n      contents: write\n      pull-requests: write\n    steps:\n      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2\n      - run: go run ./ci release promote --to dev", RuleLeastPrivilege},
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
	for _, ev := range []string{"pull_request", "push", "merge_group", "workflow_dispatch"} {
		assert.Contains(t, w.On, ev)
	}
	assert.NotContains(t, w.On, "pull_request_target")

	assert.Contains(t, w.runs("go"), "go vet ./...")
	assert.Contains(t, w.runs("go"), "bash .ci/run -race")
	assert.Contains(t, w.runs("eval"), "go run ./ci build --dry-run")
	assert.Contains(t, w.runs("plan"), "go run ./ci matrix --shards")
	assert.Contains(t, w.runs("build"), "go run ./ci build --shard")
	assert.Contains(t, w.runs("build"), "--push-to")
	assert.Contains(t, w.runs("report"), "go run ./ci report merge")
	assert.Contains(t, w.runs("unit"), "go run ./ci test --stage unit")
	assert.Contains(t, w.runs("security"), "go run ./ci test --stage security")
	assert.Contains(t, w.runs("push"), "go run ./ci push")
	assert.NotContains(t, w.runs("push"), "./ci build", "push substitutes, never builds")
	assert.Contains(t, w.runs("promote-dev"), "go run ./ci release promote --to dev")
	assert.Contains(t, w.runs("dagger"), "go run ./ci build --engine dagger --flake ./examples/offline")

	// The evaluation gate runs first: plan needs it, build needs plan and go.
	assert.Equal(t, "eval", w.Jobs["plan"].Needs)
	assert.ElementsMatch(t, []any{"go", "plan"}, w.Jobs["build"].Needs)

	// The GPU stages: runners from `ci matrix`, never for any pull request,
	// always for pushes to main.
	gpu := w.Jobs["gpu"]
	assert.Equal(t, "${{ matrix.runs-on }}", gpu.RunsOn)
	assert.Equal(t, "${{ matrix.timeout-minutes }}", gpu.Timeout)
	assertRunsOnlyWhenTrusted(t, gpu.If, false)
	got, err := EvalCondition(gpu.If, PushToMain())
	require.NoError(t, err)
	assert.Equal(t, True, got)

	// Cache push and dev promotion: pushes to main only.
	for _, job := range []string{"push", "promote-dev"} {
		assertRunsOnlyWhenTrusted(t, w.Jobs[job].If, false)
	}
	// GitHub-hosted for everyone, forks included.
	for _, job := range []string{"go", "eval", "unit", "security", "report"} {
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
	assert.NotContains(t, w.On, "pull_request")

	// The ref check comes first: everything needs it.
	assert.Contains(t, w.runs("ref"), "go run ./ci release check-ref")
	assert.Equal(t, "ref", w.Jobs["go"].Needs)
	assert.Equal(t, "ref", w.Jobs["eval"].Needs)

	for _, stage := range []string{"unit", "security"} {
		assert.Contains(t, w.runs(stage), "go run ./ci test --stage "+stage)
	}
	assert.Contains(t, w.runs("plan"), "go run ./ci matrix")
	assert.Contains(t, w.runs("push"), "go run ./ci push")
	assert.NotContains(t, w.runs("push"), "./ci build")
	assert.Contains(t, w.runs("beta"), "go run ./ci release promote --to beta")

	// The approval (environment with required reviewers) is its own job, so
	// the promotion waits for no reviewer inside a concurrency group.
	assert.Equal(t, "stable", w.Jobs["approve-stable"].Environment)
	assert.Equal(t, "beta", w.Jobs["approve-stable"].Needs)
	assert.Contains(t, w.runs("approve-stable"), "/approvals")
	stable := w.Jobs["stable"]
	assert.Nil(t, stable.Environment)
	assert.Contains(t, stable.Needs, "approve-stable")
	assert.Contains(t, w.runs("stable"), "go run ./ci release promote --to stable")
	assert.Contains(t, w.runs("stable"), `--approved-by "$CI_APPROVED_BY"`)
	assert.Equal(t, "${{ needs.approve-stable.outputs.approved-by }}", stable.Steps[len(stable.Steps)-1].Env["CI_APPROVED_BY"])

	// Every promotion needs the stage jobs of its own run.
	for _, job := range []string{"push", "beta", "stable"} {
		needs := w.Jobs[job].Needs.([]any)
		for _, j := range []string{"ref", "go", "unit", "security", "gpu"} {
			assert.Contains(t, needs, j, job)
		}
	}
}

func TestFlakeLockWorkflowShape(t *testing.T) {
	w := readWorkflow(t, "flake-lock.yml")
	assert.Contains(t, w.On, "schedule")
	assert.Contains(t, w.On, "workflow_dispatch")
	assert.Len(t, w.On, 2, "no other trigger: only the scheduled job may write")
	require.Len(t, w.Jobs, 1)
	u := w.Jobs["update"]
	assert.Equal(t, map[string]any{"contents": "write", "pull-requests": "write"}, u.Permissions)
	runs := w.runs("update")
	assert.Contains(t, runs, "flake update")
	assert.Contains(t, runs, "go run ./ci build --dry-run")
	assert.Contains(t, runs, "gh pr create")
	assert.Contains(t, runs, "gh pr edit")
}

// TestSecretsOnlyInTheStepsThatNeedThem: each project secret appears only as
// a step's env, and only in the steps that call the command needing it.
func TestSecretsOnlyInTheStepsThatNeedThem(t *testing.T) {
	need := map[string][]string{
		"NIX_SIGNING_KEY":   {"go run ./ci push"},
		"CACHIX_AUTH_TOKEN": {"go run ./ci push"},
		// Builds for pushes: remote builders and the staging cache's key.
		"NIX_BUILDER_MACHINES":    {"go run ./ci build"},
		"NIX_BUILDER_SSH_KEY":     {"go run ./ci build"},
		"NIX_STAGING_SIGNING_KEY": {"go run ./ci build"},
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
