package cmd

import (
	"context"
	"os/exec"
	"strings"

	"github.com/ipex-flake/ipex-flake/internal/childenv"
)

// gitOut runs git in dir and returns its trimmed output, or "" when git
// fails (not a repository, git missing) or prints nothing.
func gitOut(ctx context.Context, dir string, args ...string) string {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	cmd.Env = childenv.Environ()
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
