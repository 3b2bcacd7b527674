package modules

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

var (
	// mode = "1777"; (tmpfiles settings, users, environment.etc)
	modeAttrRe = regexp.MustCompile(`\bmode\s*=\s*"([0-7]{3,4})"`)
	// "d /var/cache/x 1777 root root -" (tmpfiles rules as strings)
	tmpfilesLineRe = regexp.MustCompile(`"[dDvqQpLcbCxXrRzZtThHaAfFwe][+!-]*\s+\S+\s+([0-7]{3,4})\b`)
	// chmod 777 x, chmod -R 1777 x, install -m 0666
	chmodOctalRe = regexp.MustCompile(`\b(?:chmod(?:\s+-R)?\s+|install\s+(?:-\S+\s+)*-[A-Za-z]*m\s*)([0-7]{3,4})\b`)
	// chmod o+w / a+w / +w for others
	chmodSymbolicRe = regexp.MustCompile(`\bchmod(?:\s+-R)?\s+[ugoa]*[oa][ugoa]*[+=][rxXst]*w`)
	// UMask = "0000" lets files be created world-writable.
	umaskRe = regexp.MustCompile(`\bUMask\s*=\s*"([0-7]{3,4})"`)
)

// worldWritableFindings reports every place in src that sets a mode with the
// world-write bit (or a umask that does not mask it).
func worldWritableFindings(name, src string) []string {
	var out []string
	for i, line := range strings.Split(src, "\n") {
		code := line
		if j := strings.Index(code, "#"); j >= 0 && !strings.Contains(code[:j], `"`) {
			code = code[:j] // a Nix comment
		}
		at := fmt.Sprintf("%s:%d", name, i+1)
		for _, re := range []*regexp.Regexp{modeAttrRe, tmpfilesLineRe, chmodOctalRe} {
			for _, m := range re.FindAllStringSubmatch(code, -1) {
				if last := m[1][len(m[1])-1]; last == '2' || last == '3' || last == '6' || last == '7' {
					out = append(out, at+": world-writable mode "+m[1])
				}
			}
		}
		if chmodSymbolicRe.MatchString(code) {
			out = append(out, at+": chmod grants write to others")
		}
		for _, m := range umaskRe.FindAllStringSubmatch(code, -1) {
			if last := m[1][len(m[1])-1]; last != '2' && last != '3' && last != '6' && last != '7' {
				out = append(out, at+": UMask "+m[1]+" leaves new files world-writable")
			}
		}
	}
	return out
}

func TestWorldWritableFinder(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want int
	}{
		{"tmpfiles attr 1777", `systemd.tmpfiles.settings.x."/var/cache/m".d = { mode = "1777"; };`, 1},
		{"tmpfiles attr 0666", `mode = "0666";`, 1},
		{"group dir 2770", `mode = "2770";`, 0},
		{"private 0700", `mode = "0700";`, 0},
		{"tmpfiles rule string", `systemd.tmpfiles.rules = [ "d /var/cache/ipex 1777 root root 30d" ];`, 1},
		{"tmpfiles rule string ok", `systemd.tmpfiles.rules = [ "d /var/cache/ipex 0750 root root 30d" ];`, 0},
		{"chmod octal", `chmod 777 "$dir"`, 1},
		{"chmod recursive", `chmod -R 1777 /srv/cache`, 1},
		{"chmod symbolic", `chmod o+w /srv/cache`, 1},
		{"chmod symbolic all", `chmod a+rw /srv/cache`, 1},
		{"chmod user only", `chmod u+w /srv/cache`, 0},
		{"install -Dm", `install -Dm 0666 a b`, 1},
		{"install -Dm644", `install -Dm644 a b`, 0},
		{"install -m separate", `install -D -m 0666 a b`, 1},
		{"umask open", `UMask = "0000";`, 1},
		{"umask hardened", `UMask = "0077";`, 0},
		{"comment", `# mode = "1777" was the defect`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Len(t, worldWritableFindings("x.nix", tt.src), tt.want)
		})
	}
}

// TestNoWorldWritableModes scans every .nix file and shell script of the
// modules, packages and examples: none sets a world-writable mode.
func TestNoWorldWritableModes(t *testing.T) {
	root := testlib.RepoRoot(t)
	var files []string
	for _, dir := range []string{"modules", "nix", "examples", "pkgs"} {
		require.NoError(t, filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (strings.HasSuffix(p, ".nix") || strings.HasSuffix(p, ".sh")) {
				files = append(files, p)
			}
			return nil
		}))
	}
	require.NotEmpty(t, files)
	var findings []string
	for _, f := range files {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		rel, _ := filepath.Rel(root, f)
		findings = append(findings, worldWritableFindings(rel, string(src))...)
	}
	assert.Empty(t, findings, "give each service its own CacheDirectory/StateDirectory, or a dedicated group with mode 2770")
}
