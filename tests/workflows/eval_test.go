package workflows

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEvalCondition(t *testing.T) {
	tests := []struct {
		name string
		cond string
		ctx  Context
		want Truth
	}{
		{"empty runs", "", ForkPullRequest("pull_request"), True},
		{"literal false", "false", ForkPullRequest("pull_request"), False},
		{"wrapped", "${{ github.event_name == 'push' }}", ForkPullRequest("pull_request"), False},
		{"event name", "github.event_name == 'push'", PushToMain(), True},
		{"case-insensitive strings", "github.event_name == 'PUSH'", PushToMain(), True},
		{"fork head", "github.event.pull_request.head.repo.full_name == github.repository", ForkPullRequest("pull_request"), False},
		{"same-repo head", "github.event.pull_request.head.repo.full_name == github.repository", SameRepoPullRequest("pull_request"), True},
		{"fork flag", "!github.event.pull_request.head.repo.fork", ForkPullRequest("pull_request"), False},
		{"base repository guards nothing", "github.repository == 'ipex-flake/ipex-flake'", ForkPullRequest("pull_request"), True},
		{"unknown alone", "vars.RUN_GPU == 'yes'", ForkPullRequest("pull_request"), Unknown},
		{"unknown and false", "vars.RUN_GPU == 'yes' && github.event_name == 'push'", ForkPullRequest("pull_request"), False},
		{"unknown or true", "vars.RUN_GPU == 'yes' || github.event_name == 'pull_request'", ForkPullRequest("pull_request"), True},
		{"unknown or false", "vars.RUN_GPU == 'yes' || github.event_name == 'push'", ForkPullRequest("pull_request"), Unknown},
		{"always() runs", "always() || github.event_name == 'push'", ForkPullRequest("pull_request"), True},
		{"success() and guard", "success() && github.event_name == 'push'", ForkPullRequest("pull_request"), False},
		{"startsWith ref", "startsWith(github.ref, 'refs/heads/')", PushToMain(), True},
		{"contains", "contains(github.event.pull_request.head.repo.full_name, 'contributor')", ForkPullRequest("pull_request"), True},
		{"index access", "github['event_name'] != 'pull_request'", ForkPullRequest("pull_request"), False},
		{"missing property is null", "github.event.pull_request.draft == null", ForkPullRequest("pull_request"), Unknown},
		{"number compare", "github.event.pull_request.number > 5", ForkPullRequest("pull_request"), True},
		{"ci.yml guard on push", "github.event_name == 'push' && github.ref == 'refs/heads/main'", PushToMain(), True},
		{"ci.yml guard on fork", "github.event_name == 'push' && github.ref == 'refs/heads/main'", ForkPullRequest("pull_request"), False},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EvalCondition(tt.cond, tt.ctx)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got, "%q", tt.cond)
		})
	}
}

func TestEvalConditionSyntaxError(t *testing.T) {
	_, err := EvalCondition("github.event_name ==", PushToMain())
	assert.Error(t, err)
}
