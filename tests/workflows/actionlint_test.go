package workflows

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rhysd/actionlint"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newLinter returns an actionlint linter for the repository. shellcheck and
// pyflakes check run: scripts only when they are installed.
func newLinter(t *testing.T, out io.Writer) *actionlint.Linter {
	t.Helper()
	opts := &actionlint.LinterOptions{Color: actionlint.ColorOptionKindNever, Oneline: true}
	if p, err := exec.LookPath("shellcheck"); err == nil {
		opts.Shellcheck = p
	} else {
		t.Log("shellcheck is not installed: run: scripts are not shell-checked")
	}
	if p, err := exec.LookPath("pyflakes"); err == nil {
		opts.Pyflakes = p
	}
	l, err := actionlint.NewLinter(out, opts)
	require.NoError(t, err)
	return l
}

// TestActionlint lints every workflow with the repository's
// .github/actionlint.yaml (the self-hosted runner's intel-gpu label and the
// repository variables the workflows read).
func TestActionlint(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	proj, err := actionlint.NewProject(root)
	require.NoError(t, err)
	require.NotNil(t, proj.Config(), ".github/actionlint.yaml was not read")
	assert.Contains(t, proj.Config().SelfHostedRunner.Labels, "intel-gpu")

	var out bytes.Buffer
	errs, err := newLinter(t, &out).LintDir(proj.WorkflowsDir(), proj)
	require.NoError(t, err)
	assert.Empty(t, errs, "actionlint:\n%s", out.String())
}

// TestActionlintCatchesMistakes proves the linter is wired up: a workflow
// with a typo in an expression, an unknown runner label and a script
// injection is rejected.
func TestActionlintCatchesMistakes(t *testing.T) {
	src := []byte(`name: bad
on: pull_request
permissions: {}
jobs:
  test:
    runs-on: [self-hosted, amd-gpu]
    timeout-minutes: 10
    steps:
      - run: echo "${{ github.event.pull_request.title }}"
      - run: echo ${{ github.evnet_name }}
`)
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	proj, err := actionlint.NewProject(root)
	require.NoError(t, err)
	errs, err := newLinter(t, io.Discard).Lint("bad.yml", src, proj)
	require.NoError(t, err)
	kinds := map[string]bool{}
	for _, e := range errs {
		kinds[e.Kind] = true
	}
	for _, k := range []string{"runner-label", "expression"} {
		assert.True(t, kinds[k], "actionlint did not report %s; got %v", k, kinds)
	}
}

// TestFixturesAreValidWorkflows: the policy fixtures pass actionlint, so each
// breaks only the policy rule it is named after.
func TestFixturesAreValidWorkflows(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	proj, err := actionlint.NewProject(root)
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join("testdata", "*.yml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			require.NoError(t, err)
			var out bytes.Buffer
			errs, err := newLinter(t, &out).Lint(filepath.Base(f), src, proj)
			require.NoError(t, err)
			assert.Empty(t, errs, "actionlint:\n%s", out.String())
		})
	}
}
