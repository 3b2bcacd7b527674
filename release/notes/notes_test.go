package notes

import (
	"testing"

	"github.com/ipex-flake/ipex-flake/internal/golden"
	"github.com/ipex-flake/ipex-flake/release/version"
)

func TestRender(t *testing.T) {
	commits := []version.Commit{
		{SHA: "1111111aaaa", Subject: "feat(ollama): SYCL backend"},
		{SHA: "2222222bbbb", Subject: "fix: health check port"},
		{SHA: "3333333cccc", Subject: "refactor: modules", Body: "BREAKING CHANGE: option renamed"},
		{SHA: "4444444dddd", Subject: "phase4: production hardening"},
		{SHA: "5555555eeee", Subject: "docs: readme"},
		{SHA: "6666666ffff", Subject: "feat: comfyui"},
	}
	tests := []struct {
		name string
		in   Notes
	}{
		{"stable_github.md", Notes{
			Tag: "v0.2.0", Channel: version.Stable, Rev: "abcdef0123456789", Previous: "v0.1.0",
			RepoURL: "https://github.com/ipex-flake/ipex-flake", Commits: commits,
			Stages: []Stage{
				{Name: "unit", State: "passed", URL: "https://ci.example/1"},
				{Name: "integration", State: "passed"},
				{Name: "performance", State: "passed"},
				{Name: "security", State: "passed"},
			},
			ApprovedBy: "alice",
		}},
		{"dev_local_first.md", Notes{
			Tag: "v0.1.0-dev.1", Channel: version.Dev, Rev: "abcdef0123456789",
			Commits: commits[:2], Stages: []Stage{{Name: "unit", State: "passed"}},
		}},
		{"beta_empty.md", Notes{Tag: "v0.1.0-beta.2", Channel: version.Beta, Rev: "abcdef0", Previous: "v0.1.0-beta.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { golden.Assert(t, tt.name, []byte(Render(tt.in))) })
	}
}
