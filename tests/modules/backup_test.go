package modules

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

// backupResult is one run of the backup script.
type backupResult struct {
	code   int
	stdout string
	stderr string
}

// runBackup runs pkgs/ipex-upgrade-backup/ipex-upgrade-backup.sh with bash
// and Debian's rsync, as the pre-upgrade hook runs it.
func runBackup(t *testing.T, args ...string) backupResult {
	t.Helper()
	testlib.CheckPath(t, "rsync")
	testlib.CheckPath(t, "bash")
	script := filepath.Join(testlib.RepoRoot(t), "pkgs", "ipex-upgrade-backup", "ipex-upgrade-backup.sh")
	cmd := exec.CommandContext(t.Context(), "bash", append([]string{script}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := backupResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	default:
		require.NoError(t, err)
	}
	return res
}

// writeTree creates files (relative path -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
}

// ageTree sets the mtime and atime of dir and everything below it to when.
func ageTree(t *testing.T, dir string, when time.Time) {
	t.Helper()
	var paths []string
	require.NoError(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		paths = append(paths, p)
		return err
	}))
	// Deepest first, so setting a child's times does not touch its parent's again.
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	for _, p := range paths {
		require.NoError(t, os.Chtimes(p, when, when))
	}
}

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

var stampRe = regexp.MustCompile(`^(.+)-(\d{8})-(\d{6})$`)

// backupsOf returns the timestamped backups of name in dir.
func backupsOf(t *testing.T, dir, name string) []string {
	t.Helper()
	var out []string
	for _, e := range entries(t, dir) {
		if m := stampRe.FindStringSubmatch(e); m != nil && m[1] == name {
			out = append(out, e)
		}
	}
	return out
}

// onlyBackup requires one backup of name in backups (why says why there
// must be one) whose file holds want, and returns its directory.
func onlyBackup(t *testing.T, backups, name, why, file, want string) string {
	t.Helper()
	got := backupsOf(t, backups, name)
	require.Len(t, got, 1, "%s: %v", why, entries(t, backups))
	content, err := os.ReadFile(filepath.Join(backups, got[0], file))
	require.NoError(t, err)
	assert.Equal(t, want, string(content))
	return filepath.Join(backups, got[0])
}

func stamp(tm time.Time) string { return tm.UTC().Format("20060102-150405") }

func TestBackupOfOldStateSurvivesPruning(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "private", "ollama-ipex")
	backups := filepath.Join(root, "backup")
	writeTree(t, src, map[string]string{"id_ed25519": "key", "history": "h", "models/blobs/sha256-1": "weights"})
	// Untouched for 30 days: rsync -a copies this mtime onto the backup, which
	// an mtime-based prune would delete at once.
	ageTree(t, src, time.Now().Add(-30*24*time.Hour))

	res := runBackup(t, "--backup-dir", backups, "--keep-days", "14", "--source", "ollama-ipex:"+src)
	require.Equal(t, 0, res.code, res.stderr)

	dir := onlyBackup(t, backups, "ollama-ipex", "the fresh backup of an old state directory must survive", "id_ed25519", "key")
	// rsync -a kept the source's times: the prune must not have looked at them.
	info, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Less(t, info.ModTime(), time.Now().Add(-29*24*time.Hour), "the backup carries the source mtime (rsync -a)")
}

func TestBackupPrunesByNameTimestamp(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "comfyui-ipex")
	backups := filepath.Join(root, "backup")
	writeTree(t, src, map[string]string{"user/settings.json": "{}"})
	now := time.Now()
	old := "comfyui-ipex-" + stamp(now.Add(-15*24*time.Hour))
	older := "ollama-ipex-20200101-000000"
	recent := "comfyui-ipex-" + stamp(now.Add(-13*24*time.Hour))
	writeTree(t, backups, map[string]string{
		old + "/user/settings.json":    "{}",
		older + "/history":             "h",
		recent + "/user/settings.json": "{}",
		"notes.txt":                    "not a backup",
		"manual-copy/file":             "kept",
	})
	// Fresh mtimes on old backups: only the name may decide.
	ageTree(t, filepath.Join(backups, old), now)
	ageTree(t, filepath.Join(backups, older), now)

	res := runBackup(t, "--backup-dir", backups, "--keep-days", "14", "--source", "comfyui-ipex:"+src)
	require.Equal(t, 0, res.code, res.stderr)

	got := entries(t, backups)
	assert.NotContains(t, got, old, "a backup stamped 15 days ago is older than 14 days")
	assert.NotContains(t, got, older)
	assert.Contains(t, got, recent, "a backup stamped 13 days ago is kept")
	assert.Contains(t, got, "notes.txt", "entries without a timestamp are not touched")
	assert.Contains(t, got, "manual-copy")
	assert.Len(t, backupsOf(t, backups, "comfyui-ipex"), 2, "the recent one and the new one: %v", got)
	assert.Contains(t, res.stdout, "removed "+filepath.Join(backups, old))
}

func TestBackupPathsWithSpaces(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "state dir", "ollama ipex")
	backups := filepath.Join(root, "back ups", "ipex; rm -rf $HOME")
	writeTree(t, src, map[string]string{"a file": "x", "models/big blob": "weights"})

	res := runBackup(t, "--backup-dir", backups, "--keep-days", "1",
		"--source", "ollama-ipex:"+src, "--exclude", "ollama-ipex:/models/")
	require.Equal(t, 0, res.code, res.stderr)

	dir := onlyBackup(t, backups, "ollama-ipex", "one backup of the source", "a file", "x")
	assert.NoDirExists(t, filepath.Join(dir, "models"), "model stores are excluded unless asked")
	info, err := os.Stat(backups)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm(), "the backup directory is private")
}

func TestBackupSkipsWhenSystemUnchanged(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "ollama-ipex")
	writeTree(t, src, map[string]string{"history": "h"})
	system := filepath.Join(root, "store", "system-1")
	other := filepath.Join(root, "store", "system-2")
	require.NoError(t, os.MkdirAll(system, 0o755))
	require.NoError(t, os.MkdirAll(other, 0o755))
	current := filepath.Join(root, "current-system")
	require.NoError(t, os.Symlink(system, current))

	tests := []struct {
		name       string
		newSystem  string
		wantBackup bool
	}{
		{name: "same system", newSystem: system, wantBackup: false},
		{name: "new system", newSystem: other, wantBackup: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backups := filepath.Join(t.TempDir(), "backup")
			res := runBackup(t, "--backup-dir", backups, "--keep-days", "14", "--source", "ollama-ipex:"+src,
				"--new-system", tt.newSystem, "--current-system", current)
			require.Equal(t, 0, res.code, res.stderr)
			if !tt.wantBackup {
				assert.NoDirExists(t, backups, "no upgrade: nothing is written")
				assert.Contains(t, res.stdout, "no upgrade")
				return
			}
			assert.Len(t, backupsOf(t, backups, "ollama-ipex"), 1)
		})
	}
}

func TestBackupMissingSourceIsSkipped(t *testing.T) {
	root := t.TempDir()
	backups := filepath.Join(root, "backup")
	res := runBackup(t, "--backup-dir", backups, "--keep-days", "14", "--source", "comfyui-ipex:"+filepath.Join(root, "absent"))
	require.Equal(t, 0, res.code, res.stderr)
	assert.Empty(t, entries(t, backups))
	assert.Contains(t, res.stdout, "does not exist")
}

func TestBackupUsageErrors(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "src")
	writeTree(t, src, map[string]string{"f": "x"})
	backups := filepath.Join(root, "backup")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no backup dir", []string{"--keep-days", "3"}, "--backup-dir is required"},
		{"relative backup dir", []string{"--backup-dir", "rel", "--keep-days", "3"}, "absolute path"},
		{"zero days", []string{"--backup-dir", backups, "--keep-days", "0"}, "positive number of days"},
		{"days not a number", []string{"--backup-dir", backups, "--keep-days", "7d"}, "positive number of days"},
		{"source without name", []string{"--backup-dir", backups, "--keep-days", "3", "--source", src}, "NAME:/absolute/path"},
		{"bad name", []string{"--backup-dir", backups, "--keep-days", "3", "--source", "a/b:" + src}, "may hold only"},
		{"value missing", []string{"--backup-dir", backups, "--keep-days"}, "needs a value"},
		{"unknown flag", []string{"--backup-dir", backups, "--keep-days", "3", "--stop-services"}, "unknown argument"},
		{"half a system pair", []string{"--backup-dir", backups, "--keep-days", "3", "--new-system", src}, "go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runBackup(t, tt.args...)
			assert.Equal(t, 2, res.code)
			assert.Contains(t, res.stderr, tt.want)
			assert.Contains(t, res.stderr, "usage:")
			assert.NoDirExists(t, backups, "a usage error changes nothing")
		})
	}
}

func TestBackupScriptShellcheck(t *testing.T) {
	testlib.CheckPath(t, "shellcheck")
	script := filepath.Join(testlib.RepoRoot(t), "pkgs", "ipex-upgrade-backup", "ipex-upgrade-backup.sh")
	out, err := exec.CommandContext(t.Context(), "shellcheck", "--shell=bash", script).CombinedOutput()
	assert.NoError(t, err, "%s", out)
}

func TestBackupHelp(t *testing.T) {
	res := runBackup(t, "--help")
	require.Equal(t, 0, res.code)
	assert.Contains(t, res.stdout, "usage: ipex-upgrade-backup")
	assert.Contains(t, res.stdout, fmt.Sprintf("more than %s days old", "N"))
}

// TestBackupWithModuleArguments runs the script with the arguments
// nix/lib.nix's upgradeBackupArgs builds for services.ipex.autoUpgrade (the
// composed path of the pre-upgrade hook), on a state tree laid out as
// DynamicUser keeps it.
func TestBackupWithModuleArguments(t *testing.T) {
	tests := []struct {
		name         string
		backupModels bool
		want         []string // backups expected
		wantFiles    []string // relative to their backup
		wantAbsent   []string
	}{
		{
			name:       "configuration and state only",
			want:       []string{"ollama-ipex", "comfyui-ipex"},
			wantFiles:  []string{"ollama-ipex/id_ed25519", "comfyui-ipex/user/default/comfy.settings.json", "comfyui-ipex/output/img.png"},
			wantAbsent: []string{"ollama-ipex/models", "comfyui-ipex/huggingface"},
		},
		{
			name:         "with model stores",
			backupModels: true,
			want:         []string{"ollama-ipex", "comfyui-ipex", "comfyui-ipex-models"},
			wantFiles:    []string{"ollama-ipex/models/blobs/sha256-1", "comfyui-ipex/huggingface/hub/x", "comfyui-ipex-models/checkpoints/sd.safetensors"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			stateRoot := filepath.Join(root, "var", "lib", "private")
			external := filepath.Join(root, "srv", "comfy models")
			backups := filepath.Join(root, "var", "backup", "ipex")
			writeTree(t, stateRoot, map[string]string{
				"ollama-ipex/id_ed25519":                        "key",
				"ollama-ipex/models/blobs/sha256-1":             "weights",
				"comfyui-ipex/user/default/comfy.settings.json": "{}",
				"comfyui-ipex/output/img.png":                   "png",
				"comfyui-ipex/huggingface/hub/x":                "weights",
			})
			writeTree(t, external, map[string]string{"checkpoints/sd.safetensors": "weights"})

			var args []string
			evalLib(t, fmt.Sprintf(`ipex.upgradeBackupArgs {
			  backupDir = %q; keepDays = 14; stateRoot = %q; backupModels = %t;
			  stateDirs = [ "ollama-ipex" "comfyui-ipex" ];
			  excludes = { ollama-ipex = [ "models" ]; comfyui-ipex = [ "huggingface" ]; };
			  externalModels = [ { name = "comfyui-ipex-models"; path = %q; } ];
			}`, backups, stateRoot, tt.backupModels, external), &args)
			res := runBackup(t, args...)
			require.Equal(t, 0, res.code, res.stderr)

			byName := map[string]string{}
			for _, name := range tt.want {
				got := backupsOf(t, backups, name)
				require.Len(t, got, 1, "%s: %v", name, entries(t, backups))
				byName[name] = got[0]
			}
			assert.Len(t, entries(t, backups), len(tt.want))
			// "name/rest" -> the file in name's backup.
			resolve := func(rel string) string {
				name, rest, _ := strings.Cut(rel, "/")
				dir, ok := byName[name]
				if !ok {
					return ""
				}
				return filepath.Join(backups, dir, rest)
			}
			for _, rel := range tt.wantFiles {
				p := resolve(rel)
				require.NotEmpty(t, p, rel)
				assert.FileExists(t, p)
			}
			for _, rel := range tt.wantAbsent {
				p := resolve(rel)
				require.NotEmpty(t, p, rel)
				assert.NoFileExists(t, p)
				assert.NoDirExists(t, p)
			}
		})
	}
}
