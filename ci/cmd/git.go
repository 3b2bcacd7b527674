package cmd

import (
	"context"
	"os/exec"
	"strings"
)

// gitOut runs git in dir and returns its trimmed output, or "" when git
// fails (not a repository, git missing) or prints nothing.
func gitOut(ctx context.Context, dir string, args ...string) string {
	out, err := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
