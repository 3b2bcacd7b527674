package push

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
)

// tree maps every file under dir to its content ("" when dir is absent).
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		out[strings.TrimPrefix(p, dir)] = string(data)
		return err
	})
	if !os.IsNotExist(err) {
		require.NoError(t, err)
	}
	return out
}

// editFile rewrites a file of the staging cache on disk for one test and
// puts it back afterwards.
func editFile(t *testing.T, name string, edit func(string) string) {
	t.Helper()
	orig, err := os.ReadFile(name)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(name, []byte(edit(string(orig))), 0o644))
	t.Cleanup(func() { require.NoError(t, os.WriteFile(name, orig, 0o644)) })
}

// TestPushRequiresSourceSignatures stages a closure signed with the
// staging key A (file:// and nginx WebDAV), then pushes it from a fresh,
// empty store: trusting A it is fetched, signed with the release key and
// verified; trusting another key, or after the staging narinfo lost its
// signature, had its NarHash changed or its NAR replaced on disk, the push
// fails naming the path, and the target directory is exactly as before.
// --allow-unsigned-from fetches without the check and says so.
func TestPushRequiresSourceSignatures(t *testing.T) {
	for _, c := range realCaches {
		t.Run(c.name, func(t *testing.T) {
			b := buildFixture(t, 2, 50)
			stagingURI, stagingDir := c.cache(t)
			stagingKey, other := namedKey(t, "staging.example.org-1"), namedKey(t, "other.example.org-1")
			_, err := Stage(t.Context(), StageOptions{Engine: b.Engine, URI: stagingURI, Report: b.Report, Signer: &NixSigner{Engine: b.Engine, Key: stagingKey}})
			require.NoError(t, err)
			top := b.Paths[0]
			topInfo := filepath.Join(stagingDir, cache.NarInfoName(top))
			dep := narinfoOf(t, stagingDir, top).References[0]
			depInfo := narinfoOf(t, stagingDir, "/nix/store/"+dep)
			sig := regexp.MustCompile(`(?m)^Sig: .*\n`)

			cases := []struct {
				name     string
				keys     []string
				unsigned bool
				tamper   func(t *testing.T)
				wantErr  []string
				// bad is the path the error names (top when "").
				bad string
			}{
				{name: "staging key", keys: []string{stagingKey.Public()}},
				{name: "wrong key", keys: []string{other.Public()},
					wantErr: []string{"other.example.org-1", "signatures by staging.example.org-1 only"}},
				{name: "signature stripped", keys: []string{stagingKey.Public()},
					tamper:  func(t *testing.T) { editFile(t, topInfo, func(s string) string { return sig.ReplaceAllString(s, "") }) },
					wantErr: []string{"staging.example.org-1", "its narinfo has no signature"}},
				{name: "dependency signature stripped", keys: []string{stagingKey.Public()}, bad: "/nix/store/" + dep,
					tamper: func(t *testing.T) {
						editFile(t, filepath.Join(stagingDir, cache.NarInfoName("/nix/store/"+dep)), func(s string) string { return sig.ReplaceAllString(s, "") })
					},
					wantErr: []string{"its narinfo has no signature"}},
				{name: "NarHash swapped", keys: []string{stagingKey.Public()},
					tamper: func(t *testing.T) {
						editFile(t, topInfo, func(s string) string {
							return regexp.MustCompile(`(?m)^NarHash: .*$`).ReplaceAllString(s, "NarHash: "+depInfo.NarHash)
						})
					},
					wantErr: []string{"staging.example.org-1", "that do not match it"}},
				{name: "NAR swapped", keys: []string{stagingKey.Public()},
					tamper: func(t *testing.T) {
						nar, err := os.ReadFile(filepath.Join(stagingDir, depInfo.URL))
						require.NoError(t, err)
						editFile(t, filepath.Join(stagingDir, narinfoOf(t, stagingDir, top).URL), func(string) string { return string(nar) })
					},
					wantErr: []string{"hash mismatch", "signed by one of staging.example.org-1"}, bad: "importing path '" + top},
				{name: "unsigned allowed", unsigned: true,
					tamper: func(t *testing.T) { editFile(t, topInfo, func(s string) string { return sig.ReplaceAllString(s, "") }) }},
			}
			for _, tt := range cases {
				t.Run(tt.name, func(t *testing.T) {
					if tt.tamper != nil {
						tt.tamper(t)
					}
					root := filepath.Join(t.TempDir(), "fresh")
					t.Setenv("NIX_CONFIG", os.Getenv("NIX_CONFIG")+"\nstore = "+root)
					targetDir := filepath.Join(t.TempDir(), "release")
					require.NoError(t, cache.CheckWritable(t.Context(), "file://"+targetDir))
					before := tree(t, targetDir)
					release := namedKey(t, "release.example.org-1")

					out, log, _, err := pushWith(t, b, "file://"+targetDir, release, func(o *Options) {
						o.Sources, o.SourceKeys, o.AllowUnsignedSources = []string{stagingURI}, tt.keys, tt.unsigned
					})
					if tt.wantErr != nil {
						require.Error(t, err, log)
						assert.Equal(t, clierr.ExitFailed, clierr.Code(err))
						bad := tt.bad
						if bad == "" {
							bad = top
						}
						for _, w := range append(tt.wantErr, bad, strings.TrimSuffix(stagingURI, "/"), "release.example.org-1") {
							assert.Contains(t, err.Error(), w)
						}
						assert.Equal(t, before, tree(t, targetDir), "the target is untouched")
						assert.NotContains(t, log, "copying path '/nix/store/"+dep+"' to", "nothing was uploaded")
						return
					}
					require.NoError(t, err, log)
					assert.Contains(t, out, "pushed 3 paths to file://"+targetDir)
					assert.Contains(t, log, "from '"+strings.TrimSuffix(stagingURI, "/"), "fetched from the staging cache")
					warned := strings.Count(log, "warning: --allow-unsigned-from: fetching 1 outputs from "+stagingURI+" without checking their signatures")
					assert.Equal(t, map[bool]int{true: 1, false: 0}[tt.unsigned], warned, log)
					assert.Len(t, narinfos(t, targetDir), 3)
					for _, ni := range narinfos(t, targetDir) {
						data, err := os.ReadFile(ni)
						require.NoError(t, err)
						assert.NotContains(t, string(data), "staging.example.org-1", "only the release key signs the release cache")
					}
					t.Setenv("NIX_CONFIG", strings.TrimSuffix(os.Getenv("NIX_CONFIG"), "\nstore = "+root))
					msg, err := substitute(t, "file://"+targetDir, release.Public(), b.Paths)
					require.NoError(t, err, msg)
				})
			}
		})
	}
}

// TestRealiseNeedsKeys: a fetch with neither keys nor --allow-unsigned-from
// is refused (exit 2) naming the flags, before nix fetches anything.
func TestRealiseNeedsKeys(t *testing.T) {
	testlib.OfflineNix(t)
	eng, err := host.New(engine.Options{Source: t.TempDir()})
	require.NoError(t, err)
	defer eng.Close()
	missing := "/nix/store/" + strings.Repeat("0", 32) + "-not-there"
	var log strings.Builder
	err = Realise(t.Context(), eng, []string{missing}, []string{"file:///staging"}, SourceTrust{}, &log)
	require.Error(t, err)
	assert.Equal(t, clierr.ExitUsage, clierr.Code(err))
	for _, w := range []string{"--from-key", EnvStagingPublicKey, "--allow-unsigned-from", "file:///staging"} {
		assert.Contains(t, err.Error(), w)
	}
	assert.NotContains(t, log.String(), "fetching")
}

// TestFetchTrustsOnlyTheGivenKeys runs the fetch command itself on a
// machine whose nix.conf trusts the staging key (trusted-public-keys and
// secret-key-files): nix still refuses the staging cache's paths unless
// the push's own keys include that key.
func TestFetchTrustsOnlyTheGivenKeys(t *testing.T) {
	b := buildFixture(t, 1, 10)
	stagingURI := "file://" + filepath.Join(t.TempDir(), "staging")
	stagingKey, other := namedKey(t, "staging.example.org-1"), namedKey(t, "other.example.org-1")
	_, err := Stage(t.Context(), StageOptions{Engine: b.Engine, URI: stagingURI, Report: b.Report, Signer: &NixSigner{Engine: b.Engine, Key: stagingKey}})
	require.NoError(t, err)
	secretFile := filepath.Join(t.TempDir(), "staging.sec")
	require.NoError(t, os.WriteFile(secretFile, []byte(stagingKey.Secret()), 0o600))
	conf := os.Getenv("NIX_CONFIG") + "\ntrusted-public-keys = " + stagingKey.Public() + "\nsecret-key-files = " + secretFile
	for _, tt := range []struct {
		name string
		keys []string
		ok   bool
	}{
		{"other key", []string{other.Public()}, false},
		{"staging key", []string{stagingKey.Public()}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NIX_CONFIG", conf+"\nstore = "+filepath.Join(t.TempDir(), "fresh"))
			args := fetchArgs([]string{stagingURI}, SourceTrust{Keys: tt.keys}, b.Paths)
			msg, err := nixRun(t, args[1:]...)
			if tt.ok {
				require.NoError(t, err, msg)
				return
			}
			require.Error(t, err, msg)
			assert.Contains(t, msg, "not signed by any of the keys")
		})
	}
}

func TestTrustedURI(t *testing.T) {
	tests := []struct {
		uri  string
		want bool
	}{
		{"s3://staging?trusted=1", true},
		{"https://staging.example.org?priority=10&trusted=true", true},
		{"file:///srv/staging?trusted=yes", true},
		{"s3://staging?trusted=0", false},
		{"s3://staging?trusted=false", false},
		{"s3://staging?region=eu-west-1", false},
		{"file:///srv/trusted=1", false},
		{"", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, trustedURI(tt.uri), tt.uri)
	}
}
