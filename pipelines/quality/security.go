package quality

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/atomicfile"
	"github.com/ipex-flake/ipex-flake/internal/childenv"
	"github.com/ipex-flake/ipex-flake/internal/nixstr"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
	"github.com/ipex-flake/ipex-flake/pipelines/quality/secscan"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/stage"
)

// Security is the security stage: secrets in the tree and its git
// history, actionlint on the workflows, a flake.lock audit, govulncheck
// (when its database is reachable), a CycloneDX SBOM per built output, and
// the flake's own security-scan app when it has one. Findings at or above
// FailOn fail the stage.
type Security struct {
	Env *Env
	// Report is a build report whose built/cached outputs get an SBOM.
	Report string
	// FailOn is the lowest failing severity (default high).
	FailOn string
	// MaxInputAge flags flake.lock inputs older than this (0: no limit).
	MaxInputAge time.Duration
	// SBOMDir receives <attr>.cdx.json (relative to the flake directory).
	SBOMDir string
	// Now is the clock of the age checks (default time.Now).
	Now func() time.Time
	// LookPath finds govulncheck (default exec.LookPath).
	LookPath func(file string) (string, error)

	threshold secscan.Severity
	// Findings are all findings of the last run, failing or not.
	Findings []secscan.Finding
	stage.Collector
}

var _ stage.Checker = (*Security)(nil)

// Name implements stage.Stage.
func (s *Security) Name() string { return "security" }

// Default implements stage.Defaulter.
func (s *Security) Default() error {
	if s.FailOn == "" {
		s.FailOn = "high"
	}
	t, err := secscan.ParseSeverity(s.FailOn)
	if err != nil {
		return err
	}
	s.threshold = t
	if s.SBOMDir == "" {
		s.SBOMDir = "sbom"
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.LookPath == nil {
		s.LookPath = exec.LookPath
	}
	return nil
}

// SkipReason implements stage.Skipper: the scans read a local checkout.
func (s *Security) SkipReason() string {
	if s.Env.Dir() == "" {
		return "the security scans need a local checkout; " + s.Env.Flake + " is a remote flake reference"
	}
	return ""
}

// Run implements stage.Stage.
func (s *Security) Run(ctx context.Context) error {
	s.Collector.Out = s.Env.out()
	dir := s.Env.Dir()

	s.scan("secrets (tree)", func() ([]secscan.Finding, error) { return secscan.ScanTree(ctx, dir) })
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		s.scan("secrets (git history)", func() ([]secscan.Finding, error) { return secscan.ScanHistory(ctx, dir) })
	} else {
		s.SkipCheck("secrets (git history)", "not a git checkout")
	}
	if files := secscan.WorkflowFiles(dir); len(files) > 0 {
		s.scan("actionlint", func() ([]secscan.Finding, error) { return secscan.LintWorkflows(dir, files) })
	} else {
		s.SkipCheck("actionlint", "no workflows in .github/workflows yet")
	}
	if _, err := os.Stat(filepath.Join(dir, "flake.nix")); err == nil {
		s.scan("flake.lock audit", func() ([]secscan.Finding, error) {
			return secscan.AuditLock(dir, s.MaxInputAge, s.Now())
		})
	} else {
		s.SkipCheck("flake.lock audit", "no flake.nix")
	}
	s.govulncheck(ctx, dir)
	if err := s.sboms(ctx); err != nil {
		return err
	}
	if err := s.securityScanApp(ctx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Err()
}

// scan runs one scanner and records it as a check: failed when a finding
// reaches the threshold or the scanner broke.
func (s *Security) scan(name string, f func() ([]secscan.Finding, error)) {
	start := time.Now()
	fs, err := f()
	s.Findings = append(s.Findings, fs...)
	// The findings go under their check's line.
	defer func() {
		for _, fd := range fs {
			fmt.Fprintf(s.Env.out(), "             %s\n", fd)
		}
	}()
	if err != nil {
		s.Fail(name, err.Error(), time.Since(start))
		return
	}
	var failing int
	worst := secscan.Severity(0)
	for _, fd := range fs {
		if fd.Severity >= s.threshold {
			failing++
		}
		worst = max(worst, fd.Severity)
	}
	detail := "no findings"
	if len(fs) > 0 {
		detail = fmt.Sprintf("%d findings (%d at or above %s)", len(fs), failing, s.threshold)
	}
	ch := stage.Check{Name: name, State: stage.Passed, Detail: detail, Duration: time.Since(start)}
	if worst > 0 {
		ch.Severity = worst.String()
	}
	if failing > 0 {
		ch.State = stage.Failed
	}
	s.Add(ch)
}

func (s *Security) govulncheck(ctx context.Context, dir string) {
	const name = "govulncheck"
	root := ModuleRoot(dir)
	if root == "" {
		s.SkipCheck(name, "no go.mod")
		return
	}
	bin, err := s.LookPath("govulncheck")
	if err != nil {
		s.SkipCheck(name, "govulncheck is not on PATH (go install golang.org/x/vuln/cmd/govulncheck@latest)")
		return
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "./...")
	cmd.Dir = root
	cmd.Env = childenv.Environ()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	var xe *exec.ExitError
	switch {
	case err == nil:
		s.Pass(name, "no known vulnerabilities reachable", time.Since(start))
	case errors.As(err, &xe) && xe.ExitCode() == 3:
		n := len(regexp.MustCompile(`(?m)^Vulnerability #\d+`).FindAll(stdout.Bytes(), -1))
		fd := secscan.Finding{Scanner: name, Rule: "reachable-vulnerability", Severity: secscan.High,
			Message: fmt.Sprintf("%d vulnerabilities reachable from the code: run govulncheck ./... for details", n)}
		s.scan(name, func() ([]secscan.Finding, error) { return []secscan.Finding{fd}, nil })
	default:
		// Most often the database (vuln.go.dev) is unreachable.
		s.SkipCheck(name, "govulncheck could not run: "+tail(stderr.String(), 2))
	}
}

// sboms writes a CycloneDX SBOM of the runtime closure of each output the
// build report marks built or cached.
func (s *Security) sboms(ctx context.Context) error {
	const name = "sbom"
	if s.Report == "" {
		s.SkipCheck(name, "no build report: pass --report from ci build --report")
		return nil
	}
	rep, err := report.Read(s.Report)
	if err != nil {
		s.Fail(name, err.Error(), 0)
		return nil
	}
	eng, err := s.Env.Engine(ctx)
	if err != nil {
		return err
	}
	outDir := s.SBOMDir
	if !filepath.IsAbs(outDir) {
		outDir = filepath.Join(s.Env.Dir(), outDir)
	}
	n := 0
	for _, o := range rep.Outputs {
		if !o.Available() {
			continue
		}
		n++
		start := time.Now()
		stdout, stderr, err := run(ctx, eng, nixcli.Nix(append([]string{"path-info", "-r", "--json"}, o.OutPaths...)...))
		if err != nil {
			s.Fail(name+" "+o.Attr, "nix path-info: "+tail(stderr, 3), time.Since(start))
			continue
		}
		closure, err := nixcli.ParsePathInfo([]byte(stdout))
		if err != nil {
			s.Fail(name+" "+o.Attr, err.Error(), time.Since(start))
			continue
		}
		bom := secscan.NewBOM(o.Attr, o.OutPaths, closure, s.Now())
		var data bytes.Buffer
		if err := secscan.WriteBOM(&data, bom); err != nil {
			s.Fail(name+" "+o.Attr, err.Error(), time.Since(start))
			continue
		}
		file := filepath.Join(outDir, strings.ReplaceAll(o.Attr, "/", "_")+".cdx.json")
		if err := atomicfile.Write(file, data.Bytes(), 0o644); err != nil {
			s.Fail(name+" "+o.Attr, err.Error(), time.Since(start))
			continue
		}
		s.Pass(name+" "+o.Attr, fmt.Sprintf("%d components → %s", len(*bom.Components), file), time.Since(start))
	}
	if n == 0 {
		s.SkipCheck(name, "the build report has no built or cached outputs")
	}
	return nil
}

// securityScanApp runs `nix run <flake>#security-scan` when the flake has
// apps.<system>.security-scan.
func (s *Security) securityScanApp(ctx context.Context) error {
	const name = "nix run .#security-scan"
	if _, err := os.Stat(filepath.Join(s.Env.Dir(), "flake.nix")); err != nil {
		s.SkipCheck(name, "no flake.nix")
		return nil
	}
	if !mentionsApp(s.Env.Dir(), "security-scan") {
		// No need to evaluate (and fetch the inputs of) the flake.
		s.SkipCheck(name, "no .nix file of the flake defines security-scan")
		return nil
	}
	eng, err := s.Env.Engine(ctx)
	if err != nil {
		return err
	}
	ref := s.Env.FlakeRef(eng)
	sys := s.Env.systems()[0]
	expr := fmt.Sprintf(`((builtins.getFlake %s).apps or { }).%s or { } ? "security-scan"`, nixstr.Quote(ref), nixstr.Quote(sys))
	stdout, stderr, err := run(ctx, eng, nixcli.Nix("eval", "--impure", "--json", "--expr", expr))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if why, ok := s.Env.fetchFailure(stderr); ok {
			// It could not run here; the flake.lock audit and the unit
			// stage report the inputs.
			s.SkipCheck(name, why)
			return nil
		}
		s.Fail(name, "cannot evaluate the flake's apps: "+tail(stderr, 3), 0)
		return nil
	}
	if strings.TrimSpace(stdout) != "true" {
		s.SkipCheck(name, "the flake has no apps."+sys+".security-scan")
		return nil
	}
	start := time.Now()
	var out bytes.Buffer
	res, err := eng.Run(ctx, engine.Cmd{Args: nixcli.Nix("run", ref+"#security-scan"), Stdout: &out, Stderr: &out})
	switch {
	case err != nil:
		s.Fail(name, err.Error(), time.Since(start))
	case res.ExitCode != 0:
		fd := secscan.Finding{Scanner: "security-scan", Rule: "security-scan", Severity: secscan.High,
			Message: fmt.Sprintf("exited %d: %s", res.ExitCode, tail(out.String(), 3))}
		s.scan(name, func() ([]secscan.Finding, error) { return []secscan.Finding{fd}, nil })
	default:
		s.Pass(name, "", time.Since(start))
	}
	return nil
}

// mentionsApp reports whether a .nix file under dir (not in .git or
// result links) contains name.
func mentionsApp(dir, name string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || found {
			return filepath.SkipDir
		}
		if d.IsDir() {
			if p != dir && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == "result") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".nix") && d.Type().IsRegular() {
			if data, err := os.ReadFile(p); err == nil && bytes.Contains(data, []byte(name)) {
				found = true
			}
		}
		return nil
	})
	return found
}
