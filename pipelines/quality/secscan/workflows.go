package secscan

import (
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rhysd/actionlint"
)

// WorkflowFiles lists .github/workflows/*.yml and *.yaml under root.
func WorkflowFiles(root string) []string {
	var files []string
	for _, pat := range []string{"*.yml", "*.yaml"} {
		m, _ := filepath.Glob(filepath.Join(root, ".github", "workflows", pat))
		files = append(files, m...)
	}
	sort.Strings(files)
	return files
}

// LintWorkflows runs actionlint (as a library, without shellcheck or
// pyflakes) on the workflow files. Each problem is a High finding: a
// broken workflow is a broken pipeline.
func LintWorkflows(root string, files []string) ([]Finding, error) {
	l, err := actionlint.NewLinter(io.Discard, &actionlint.LinterOptions{WorkingDir: root})
	if err != nil {
		return nil, err
	}
	errs, err := l.LintFiles(files, nil)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, e := range errs {
		rel, rerr := filepath.Rel(root, e.Filepath)
		if rerr != nil || strings.HasPrefix(rel, "..") {
			rel = e.Filepath
		}
		out = append(out, Finding{Scanner: "actionlint", Rule: e.Kind, Severity: High, File: rel, Line: e.Line, Message: e.Message})
	}
	return out, nil
}
