package docs

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/ci/cmd"
	"github.com/ipex-flake/ipex-flake/internal/cmdline"
)

// root is the repository, relative to this package.
const root = "../.."

// markdownFiles returns every Markdown file of the repository (not test
// fixtures), relative to root.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "node_modules" || d.Name() == ".ci-out") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			out = append(out, relTo(root, p))
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

// docFiles are the documentation pages: README.md, CONTRIBUTING.md, docs/**.
func docFiles(t *testing.T) []string {
	var out []string
	for _, f := range markdownFiles(t) {
		if f == "README.md" || f == "CONTRIBUTING.md" || strings.HasPrefix(f, "docs"+string(filepath.Separator)) {
			out = append(out, f)
		}
	}
	require.Contains(t, out, "README.md")
	return out
}

func read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	require.NoError(t, err)
	return string(b)
}

func TestLinksResolve(t *testing.T) {
	var problems []string
	n := 0
	for _, f := range markdownFiles(t) {
		for _, l := range Links(read(t, f)) {
			n++
			if err := CheckLink(root, filepath.Join(root, f), l.Target); err != nil {
				problems = append(problems, fmt.Sprintf("%s:%d: %v", f, l.Line, err))
			}
		}
	}
	t.Logf("%d links checked", n)
	assert.Greater(t, n, 50, "links found: the scan reads the docs")
	assert.Empty(t, problems, "fix the links (anchors follow GitHub's rules: lowercase, punctuation dropped, spaces to hyphens)")
}

func TestLinkChecker(t *testing.T) {
	dir := t.TempDir()
	page := "# Title\n\n## Exit codes: 0, 1 and 2\n\n## `ci build --shard I/N`\n\n## Repeat\n\n## Repeat\n\n<a id=\"custom\"></a>\n\n```sh\n# not a heading\n[not](a-link.md)\n```\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "page.md"), []byte(page), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "code.go"), []byte("a\nb\nc\n"), 0o644))
	from := filepath.Join(dir, "from.md")
	tests := []struct {
		target  string
		wantErr bool
	}{
		{"page.md", false},
		{"page.md#title", false},
		{"page.md#exit-codes-0-1-and-2", false},
		{"page.md#ci-build---shard-in", false},
		{"page.md#repeat-1", false},
		{"page.md#custom", false},
		{"code.go#L2", false},
		{"https://example.org/x.md#nowhere", false},
		{"./", false},
		{"page.md#repeat-2", true},
		{"page.md#not-a-heading", true},
		{"page.md#Title", true},
		{"missing.md", true},
		{"code.go#L9", true},
		{"code.go#top", true},
		{"../../../../../../etc/passwd", true},
	}
	for _, tt := range tests {
		err := CheckLink(dir, from, tt.target)
		if tt.wantErr {
			assert.Error(t, err, tt.target)
		} else {
			assert.NoError(t, err, tt.target)
		}
	}
	got := Links("[a](x.md) ![i](img.png) `[no](code.md)` [b](<y z.md> \"t\")\n[ref]: z.md#h\n```\n[no](fenced.md)\n```\n")
	var targets []string
	for _, l := range got {
		targets = append(targets, l.Target)
	}
	assert.Equal(t, []string{"x.md", "img.png", "y z.md", "z.md#h"}, targets)
}

// pending are command names and flags agreed in the issues and being built
// on other branches. Until they land, the command lines that use them are
// checked with each added to the tree; once one exists this test fails and
// asks for its entry to be removed, so every line is then checked against
// the real definition.
var pending = []pendingName{}

// pendingName is a command (flag "") or a flag not yet on main.
type pendingName struct {
	path string // command path below ci
	flag string // flag name, "" for the command itself
	bool bool   // the flag takes no value
}

// sub returns c's direct subcommand called name, or nil.
func sub(c *cobra.Command, name string) *cobra.Command {
	for _, s := range c.Commands() {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

// commandTree returns the real command tree with the pending names added,
// and the pending entries that already exist there.
func commandTree(pending []pendingName) (*cobra.Command, []string) {
	var o bytes.Buffer
	root := cmd.NewRootCmd(&cmd.IO{In: strings.NewReader(""), Out: &o, Err: &o, Getenv: func(string) string { return "" }})
	var landed []string
	for _, p := range pending {
		c, existed := root, true
		for _, name := range strings.Fields(p.path) {
			next := sub(c, name)
			if next == nil {
				existed = false
				next = &cobra.Command{Use: name, RunE: func(*cobra.Command, []string) error { return nil }}
				c.AddCommand(next)
			}
			c = next
		}
		switch {
		case p.flag == "" && existed:
			landed = append(landed, "ci "+p.path)
		case p.flag == "":
		case c.Flags().Lookup(p.flag) != nil || c.InheritedFlags().Lookup(p.flag) != nil:
			landed = append(landed, "ci "+p.path+" --"+p.flag)
		case p.bool:
			c.Flags().Bool(p.flag, false, "pending")
		default:
			c.Flags().String(p.flag, "", "pending")
		}
	}
	return root, landed
}

// wrappedGoRun is `go run` at the end of a prose line with `./ci` on the next.
var wrappedGoRun = regexp.MustCompile(`go run[ \t]*\n[ \t]*\./ci`)

func TestCommandLinesParse(t *testing.T) {
	root, landed := commandTree(pending)
	assert.Empty(t, landed, "these now exist: remove them from `pending` in tests/docs/docs_test.go")
	var problems []string
	n := 0
	for _, f := range docFiles(t) {
		for _, args := range cmdline.Find(wrappedGoRun.ReplaceAllString(read(t, f), "go run ./ci")) {
			n++
			if _, err := cmdline.Check(root, args); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", f, err))
			}
		}
	}
	t.Logf("%d command lines checked", n)
	assert.Greater(t, n, 20, "command lines found: the scan reads the docs")
	assert.Empty(t, problems, "every `go run ./ci …` line in the docs must name a real command and its real flags (go run ./ci <command> --help)")
}

func TestCommandLineCheckerFails(t *testing.T) {
	_, landed := commandTree([]pendingName{{"build", "report", false}, {"release promote", "", false}, {"build", "not-yet", true}})
	assert.Equal(t, []string{"ci build --report", "ci release promote"}, landed, "pending names that exist are reported")
	root, _ := commandTree(pending)
	assert.Equal(t, [][]string{{"doctor"}}, cmdline.Find(wrappedGoRun.ReplaceAllString("checks (set them; `go run\n./ci doctor` checks", "go run ./ci")))
	for _, line := range []string{"go run ./ci build --no-such-flag", "go run ./ci biuld", "go run ./ci release promot --to dev", "go run ./ci test --stage"} {
		args := cmdline.Find(line)
		require.Len(t, args, 1, line)
		_, err := cmdline.Check(root, args[0])
		assert.Error(t, err, line)
	}
	for _, line := range []string{"go run ./ci build --report r.json", "go run ./ci release promote --to beta", "go run ./ci test --stage unit", "go run ./ci build --dry-run --shard 1/2"} {
		_, err := cmdline.Check(root, cmdline.Find(line)[0])
		assert.NoError(t, err, line)
	}
}

// upstream are option namespaces that nixpkgs or Home Manager declare, not
// modules/: the docs may name options below them (checked by hand in
// nixpkgs' source, nixos/modules/services/…).
var upstream = map[string]string{
	"services.nginx":          "nixpkgs services/web-servers/nginx",
	"services.prometheus":     "nixpkgs services/monitoring/prometheus",
	"services.grafana":        "nixpkgs services/monitoring/grafana.nix",
	"services.github-runners": "nixpkgs services/continuous-integration/github-runners",
	"services.ollama":         "nixpkgs services/misc/ollama.nix",
	"services.openssh":        "nixpkgs services/networking/ssh/sshd.nix",
	"services.fstrim":         "nixpkgs services/hardware/fstrim.nix",
	"programs.ssh":            "nixpkgs programs/ssh.nix",
}

// notOptions are names the docs mention as names that do not exist here
// (the seed's names and what replaced them).
var notOptions = map[string]string{
	"programs.ollama":  "docs/modules.md: the seed's name for programs.ipex.ollama",
	"programs.comfyui": "docs/modules.md: the seed's name for programs.ipex.comfyui",
}

var optionName = regexp.MustCompile(`(?:^|[^\w.$/-])((?:services|programs)\.[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)`)
var nixBlock = regexp.MustCompile("(?ms)^\\s*```nix\\s*\n(.*?)^\\s*```")

// pendingOptions are options the docs name that a module is about to declare
// (agreed in the issues, being built on another branch). Once one is
// declared TestOptionsDeclared fails and asks for its removal here.
var pendingOptions = map[string]string{}

var tableRow = regexp.MustCompile(`^\s*\|(.*)\|\s*$`)
var codeText = regexp.MustCompile("`([^`]+)`")

// TableOptions returns the options named in the first column of Markdown
// tables whose first header is "option". A name that does not start with
// services./programs. is relative to the last full option name written
// before the table (`services.ollama-ipex` sets … | `numParallel` |).
func TableOptions(text string) ([]string, error) {
	lines := strings.Split(text, "\n")
	var out []string
	for i := 0; i < len(lines); i++ {
		m := tableRow.FindStringSubmatch(lines[i])
		if m == nil || !strings.EqualFold(strings.TrimSpace(strings.Split(m[1], "|")[0]), "option") {
			continue
		}
		before := optionName.FindAllStringSubmatch(strings.Join(lines[:i], "\n"), -1)
		base := ""
		if len(before) > 0 {
			base = before[len(before)-1][1]
		}
		for i += 2; i < len(lines); i++ {
			row := tableRow.FindStringSubmatch(lines[i])
			if row == nil {
				break
			}
			for _, c := range codeText.FindAllStringSubmatch(strings.Split(row[1], "|")[0], -1) {
				name := c[1]
				if !strings.HasPrefix(name, "services.") && !strings.HasPrefix(name, "programs.") {
					if base == "" {
						return nil, fmt.Errorf("line %d: option table names %q but no services.*/programs.* name comes before it", i+1, name)
					}
					name = base + "." + name
				}
				out = append(out, name)
			}
		}
	}
	return out, nil
}

// OptionNames returns the services.*/programs.* names a Markdown page
// mentions: in its text and, inside ```nix blocks, with nested attribute
// sets resolved to full paths.
func OptionNames(text string) []string {
	var out []string
	for _, m := range optionName.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	for _, m := range nixBlock.FindAllStringSubmatch(text, -1) {
		out = append(out, ConfigPaths(m[1])...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// checkOption reports why name is not an option of modules/ (or of an
// upstream namespace), or nil.
func checkOption(opts map[string]Option, name string) error {
	if _, ok := notOptions[name]; ok {
		return nil
	}
	seg := strings.Split(name, ".")
	if len(seg) >= 2 {
		if _, ok := upstream[seg[0]+"."+seg[1]]; ok {
			return nil
		}
	}
	if _, ok := opts[name]; ok {
		return nil
	}
	for p, o := range opts {
		if strings.HasPrefix(p, name+".") {
			return nil // a namespace: services.ipex.monitoring
		}
		if o.Open && strings.HasPrefix(name, p+".") {
			return nil // a key of an attribute-set option: environmentVariables.X
		}
	}
	ns := strings.Join(seg[:min(2, len(seg))], ".")
	for p := range opts {
		if strings.HasPrefix(p, ns+".") {
			return fmt.Errorf("%s is declared by no module in modules/ (%s is ours: declare the option, or fix the name)", name, ns)
		}
	}
	return fmt.Errorf("%s is not declared in modules/, and %s is not in `upstream` (a nixpkgs namespace checked in nixpkgs' source)", name, ns)
}

func TestOptionsDeclared(t *testing.T) {
	opts, err := ModuleOptions(root, "modules")
	require.NoError(t, err)
	for _, want := range []string{"services.ollama-ipex.port", "services.ipex.gpu.driver", "services.ipex.monitoring.health.enable", "programs.ipex.comfyui.port", "services.ipex.proxy.basicAuthFile"} {
		require.Contains(t, opts, want, "the module scan reads nested attribute sets")
	}
	var problems, landed []string
	for name := range pendingOptions {
		if _, ok := opts[name]; ok {
			landed = append(landed, name)
		}
	}
	assert.Empty(t, landed, "these options are declared now: remove them from `pendingOptions` in tests/docs/docs_test.go")
	n := 0
	for _, f := range docFiles(t) {
		text := read(t, f)
		names := OptionNames(text)
		table, err := TableOptions(text)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", f, err))
		}
		for _, name := range append(names, table...) {
			n++
			if _, ok := pendingOptions[name]; ok {
				continue
			}
			if err := checkOption(opts, name); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", f, err))
			}
		}
	}
	t.Logf("%d option names checked against %d declared options", n, len(opts))
	assert.Greater(t, n, 20, "option names found: the scan reads the docs")
	assert.Empty(t, problems, "name only options a module in modules/ declares (or add a nixpkgs namespace to `upstream` after checking nixpkgs' source)")
}

func TestTableOptions(t *testing.T) {
	got, err := TableOptions("`services.demo` sets:\n\n| option | default |\n|---|---|\n| `port` | 1 |\n| `programs.x.enable` | |\n\nafter\n| `not` | a table of options |\n")
	require.NoError(t, err)
	assert.Equal(t, []string{"services.demo.port", "programs.x.enable"}, got)
	_, err = TableOptions("| option | default |\n|---|---|\n| `port` | 1 |\n")
	assert.Error(t, err, "a relative name needs a base")
}

func TestOptionScan(t *testing.T) {
	src := `{ config, lib, pkgs, ... }:
let
  cfg = config.services.demo;
  s = "options.services.fake = lib.mkOption { };"; # options.services.comment = lib.mkOption {};
in
{
  options.services.demo = {
    enable = lib.mkEnableOption "demo";
    nested = {
      port = lib.mkOption { type = lib.types.port; default = 1; description = ''a } b''; };
      deep.flag = lib.mkOption { type = lib.types.bool; };
    };
    env = lib.mkOption { type = lib.types.attrsOf lib.types.str; };
  };
  options = {
    programs.demo.package = lib.mkPackageOption pkgs "hello" { };
  };
  config = lib.mkIf cfg.enable {
    environment.etc.x.source = (pkgs.formats.json { }).generate "x" { options.path = "y"; };
  };
}
`
	opts, err := ScanOptions("demo.nix", src)
	require.NoError(t, err)
	var got []string
	for _, o := range opts {
		got = append(got, o.Path)
	}
	assert.ElementsMatch(t, []string{"services.demo.enable", "services.demo.nested.port", "services.demo.nested.deep.flag", "services.demo.env", "programs.demo.package"}, got)
	byPath := map[string]Option{}
	for _, o := range opts {
		byPath[o.Path] = o
	}
	assert.True(t, byPath["services.demo.env"].Open)
	assert.False(t, byPath["services.demo.nested.port"].Open)

	for _, name := range []string{"services.demo.enable", "services.demo.nested", "services.demo.env.FOO", "services.nginx.virtualHosts"} {
		assert.NoError(t, checkOption(byPath, name), name)
	}
	for _, name := range []string{"services.demo.enabled", "services.demo.nested.port.x", "services.demoo", "programs.other.enable"} {
		assert.Error(t, checkOption(byPath, name), name)
	}

	_, err = ScanOptions("bad.nix", "{ options.services.demo = { port = 8080; }; }")
	assert.ErrorContains(t, err, "bad.nix:1: cannot read the declaration of services.demo.port")

	assert.ElementsMatch(t,
		[]string{"services.demo", "services.demo.enable", "services.demo.nested.port", "programs.demo.enable"},
		ConfigPaths("{\n  services.demo = {\n    enable = true;\n    nested.port = 1; # services.no\n  };\n  programs.demo.enable = true;\n  systemd.services.x.enable = true;\n}"))
}

// TestArchitectureNamesEveryPackage keeps docs/architecture.md's table of
// where each Go package sits complete: every package of the pipeline
// (ci/, pipelines/, release/, internal/) is named there.
func TestArchitectureNamesEveryPackage(t *testing.T) {
	page := read(t, filepath.Join("docs", "architecture.md"))
	var missing []string
	n := 0
	for _, top := range []string{"ci", "pipelines", "release", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() || d.Name() == "testdata" {
				if d != nil && d.IsDir() && d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return err
			}
			gofiles, _ := filepath.Glob(filepath.Join(p, "*.go"))
			for _, f := range gofiles {
				if !strings.HasSuffix(f, "_test.go") {
					n++
					pkg := filepath.ToSlash(relTo(root, p))
					if !strings.Contains(page, "`"+pkg+"`") {
						missing = append(missing, pkg)
					}
					break
				}
			}
			return nil
		})
		require.NoError(t, err)
	}
	assert.Greater(t, n, 20, "packages found")
	assert.Empty(t, missing, "name these packages in docs/architecture.md (table \"Where each Go package sits\")")
}

// TestModuleReferencesDeclared cross-checks the option scan against the
// modules' own code: every option a module reads (`cfg.gpu.driver` with
// `cfg = config.services.ipex;`, `config.services.ipex.enable`) under a
// namespace of modules/ is one the scan found. A reference the scan misses
// is either a declaration the scan cannot read or a typo that only
// evaluation (which cannot run here) would catch.
func TestModuleReferencesDeclared(t *testing.T) {
	opts, err := ModuleOptions(root, "modules")
	require.NoError(t, err)
	refs, err := ModuleReferences(root, "modules")
	require.NoError(t, err)
	ours := map[string]bool{}
	for p := range opts {
		seg := strings.Split(p, ".")
		ours[seg[0]+"."+seg[1]] = true
	}
	var problems []string
	n := 0
	for _, r := range refs {
		seg := strings.Split(r.Path, ".")
		if !ours[seg[0]+"."+seg[1]] {
			continue // nixpkgs' (services.prometheus.enable)
		}
		n++
		if err := checkOption(opts, r.Path); err != nil {
			problems = append(problems, fmt.Sprintf("%s:%d: %v", r.File, r.Line, err))
		}
	}
	t.Logf("%d option references of the modules checked", n)
	assert.Greater(t, n, 50, "references found: the scan reads the modules")
	assert.Empty(t, problems)
}

func TestReferences(t *testing.T) {
	src := "let\n  cfg = config.services.demo;\n  other = config.services.x or { enable = false; };\nin {\n  # cfg.commented.out\n  a = cfg.port;\n  b = \"${toString cfg.nested.port}\";\n  c = other.enable;\n  d = config.services.demo.enable;\n  e = pkgs.cfg.notOurs;\n}\n"
	var got []string
	for _, r := range References("m.nix", src) {
		got = append(got, r.Path)
	}
	assert.ElementsMatch(t, []string{"services.demo", "services.x", "services.demo.enable", "services.demo.port", "services.demo.nested.port", "services.x.enable"}, got)
}

var (
	unitDecl  = regexp.MustCompile(`systemd\.(services|timers)\.("?)([\w-]+)`)
	unitFile  = regexp.MustCompile(`\b([\w-]+)\.(service|timer)\b`)
	unitFlag  = regexp.MustCompile(`(?:journalctl|systemctl)[^\n|;&]*`)
	unitWords = regexp.MustCompile(`(?:-u\s+|(?:status|restart|start|stop)\s+)((?:[\w-]+\s*)+)`)
)

// ourUnit reports whether a unit name belongs to this flake's modules.
func ourUnit(name string) bool {
	return strings.HasPrefix(name, "ipex-") || strings.HasSuffix(name, "-ipex") || strings.Contains(name, "-ipex-")
}

// TestUnitsExist: every systemd unit of this flake that the docs name
// (`ollama-ipex-model-loader`, `ipex-health-monitor.timer`, in journalctl
// and systemctl lines) is one a module in modules/ defines.
func TestUnitsExist(t *testing.T) {
	units := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(root, "modules"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".nix") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range unitDecl.FindAllStringSubmatch(string(b), -1) {
			units[m[3]+"."+strings.TrimSuffix(m[1], "s")] = true
		}
		return nil
	})
	require.NoError(t, err)
	require.Contains(t, units, "ollama-ipex.service")
	require.Contains(t, units, "ipex-health-monitor.timer")

	var problems []string
	n := 0
	for _, f := range docFiles(t) {
		text := read(t, f)
		named := map[string]bool{}
		for _, m := range unitFile.FindAllStringSubmatch(text, -1) {
			named[m[1]+"."+m[2]] = true
		}
		for _, line := range unitFlag.FindAllString(text, -1) {
			for _, m := range unitWords.FindAllStringSubmatch(line, -1) {
				for _, w := range strings.Fields(m[1]) {
					named[w+".service"] = true
				}
			}
		}
		for u := range named {
			if !ourUnit(strings.TrimSuffix(strings.TrimSuffix(u, ".service"), ".timer")) {
				continue
			}
			n++
			if !units[u] {
				problems = append(problems, fmt.Sprintf("%s: %s is defined by no module in modules/", f, u))
			}
		}
	}
	t.Logf("%d unit names checked against %d units", n, len(units))
	assert.Greater(t, n, 5, "unit names found: the scan reads the docs")
	slices.Sort(problems)
	assert.Empty(t, problems)
}
