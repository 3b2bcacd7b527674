package cmdline

import (
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		line string
		want []string
	}{
		{`build --report .ci-out/r.json`, []string{"build", "--report", ".ci-out/r.json"}},
		{`test --stage "$STAGE" --require`, []string{"test", "--stage", "1", "--require"}},
		{`push --cache "$NIX_CACHE_URI" ${CACHIX_NAME:+--cachix "$CACHIX_NAME"}`, []string{"push", "--cache", "1"}},
		{`matrix --shards "${BUILD_SHARDS:-1}"`, []string{"matrix", "--shards", "1"}},
		{`build --attr 'packages.*.ollama-ipex'`, []string{"build", "--attr", "packages.*.ollama-ipex"}},
		{`build --report <FILE>`, []string{"build", "--report", "1"}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Split(tt.line), tt.line)
	}
}

func TestFind(t *testing.T) {
	text := "run: go run ./ci build --shard \"$SHARD\" \\\n  --report r.json\n# go run ./ci test --stage unit | tee x\n"
	assert.Equal(t, [][]string{{"build", "--shard", "1", "--report", "r.json"}, {"test", "--stage", "unit"}}, Find(text))
}

func TestCheck(t *testing.T) {
	root := &cobra.Command{Use: "ci"}
	build := &cobra.Command{Use: "build", RunE: func(*cobra.Command, []string) error { return nil }}
	build.Flags().String("report", "", "")
	build.Flags().Int("jobs", 0, "")
	release := &cobra.Command{Use: "release"}
	promote := &cobra.Command{Use: "promote", RunE: func(*cobra.Command, []string) error { return nil }}
	promote.Flags().String("to", "", "")
	release.AddCommand(promote)
	root.AddCommand(build, release)

	for _, ok := range [][]string{{"build", "--report", "x"}, {"build", "--jobs", "1"}, {"release", "promote", "--to", "dev"}, {"build", "--help"}} {
		_, err := Check(root, ok)
		assert.NoError(t, err, ok)
	}
	for _, bad := range [][]string{{"build", "--typo"}, {"biuld"}, {"release", "promot"}, {"build", "--jobs", "many"}, {"release", "promote", "--report", "x"}} {
		_, err := Check(root, bad)
		require.Error(t, err, bad)
	}
}
