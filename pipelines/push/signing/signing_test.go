package signing

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

func TestPublicMatchesNix(t *testing.T) {
	testlib.CheckPath(t, "nix")
	k, err := Generate("ipex-test-1")
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), "nix", "--extra-experimental-features", "nix-command", "key", "convert-secret-to-public")
	cmd.Stdin = strings.NewReader(k.Secret())
	out, err := cmd.Output()
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(out)), k.Public())

	// And a key nix generated parses to the same public key.
	gen, err := exec.CommandContext(t.Context(), "nix", "--extra-experimental-features", "nix-command", "key", "generate-secret", "--key-name", "n-1").Output()
	require.NoError(t, err)
	k2, err := Parse(string(gen), "test")
	require.NoError(t, err)
	cmd = exec.CommandContext(t.Context(), "nix", "--extra-experimental-features", "nix-command", "key", "convert-secret-to-public")
	cmd.Stdin = strings.NewReader(string(gen))
	out, err = cmd.Output()
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(out)), k2.Public())
}

func TestParseErrorsNeverQuoteTheKey(t *testing.T) {
	k, err := Generate("n-1")
	require.NoError(t, err)
	secret := k.Secret()
	for _, bad := range []string{secret[:len(secret)-4], strings.Replace(secret, ":", "", 1), ":" + secret, k.Public()} {
		_, err := Parse(bad, "NIX_SIGNING_KEY")
		require.Error(t, err)
		assert.Equal(t, clierr.ExitUsage, clierr.Code(err))
		assert.NotContains(t, err.Error(), secret[5:20])
	}
	assert.NotContains(t, k.String(), secret[len("n-1:"):])
}

func TestLoadOrGenerate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cfg", "ipex-flake", "signing-key.sec")
	k, gen, err := LoadOrGenerate(path)
	require.NoError(t, err)
	assert.True(t, gen)
	assert.Equal(t, DefaultKeyName, k.Name())
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	again, gen, err := LoadOrGenerate(path)
	require.NoError(t, err)
	assert.False(t, gen, "the second use loads the key")
	assert.Equal(t, k.Public(), again.Public())
}

func TestResolveOrder(t *testing.T) {
	dir := t.TempDir()
	write := func(name string) (*Key, string) {
		k, err := Generate(name)
		require.NoError(t, err)
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(k.Secret()+"\n"), 0o600))
		return k, p
	}
	flagKey, flagFile := write("flag-1")
	envFileKey, envFile := write("envfile-1")
	envKey, err := Generate("env-1")
	require.NoError(t, err)
	env := map[string]string{EnvKeyFile: envFile, EnvKey: envKey.Secret()}
	getenv := func(k string) string { return env[k] }
	def := filepath.Join(dir, "default.sec")

	tests := []struct {
		name string
		src  Source
		want string
	}{
		{"flag wins", Source{File: flagFile, Getenv: getenv, DefaultPath: def}, flagKey.Public()},
		{"env file next", Source{Getenv: getenv, DefaultPath: def}, envFileKey.Public()},
		{"env key next", Source{Getenv: func(k string) string {
			if k == EnvKey {
				return env[k]
			}
			return ""
		}, DefaultPath: def}, envKey.Public()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, gen, err := Resolve(tt.src)
			require.NoError(t, err)
			assert.False(t, gen)
			assert.Equal(t, tt.want, k.Public())
		})
	}
	k, gen, err := Resolve(Source{Getenv: func(string) string { return "" }, DefaultPath: def})
	require.NoError(t, err)
	assert.True(t, gen)
	assert.Equal(t, DefaultKeyName, k.Name())

	_, _, err = Resolve(Source{File: filepath.Join(dir, "missing")})
	assert.Equal(t, clierr.ExitUsage, clierr.Code(err))
}

func TestNixConfLines(t *testing.T) {
	assert.Equal(t, "extra-substituters = file:///c\nextra-trusted-public-keys = n-1:AAA=\n", NixConfLines("file:///c", "n-1:AAA="))
}

func TestParseErrorsNameTheFix(t *testing.T) {
	k, err := Generate("n-1")
	require.NoError(t, err)
	tests := []struct {
		name, text, want, notWant string
	}{
		{"public key", k.Public(), "this is a public key", ""},
		{"short", "n-1:AAAA", "nix key generate-secret --key-name n-1", ""},
		{"some other file", "{\n  description = \"top secret: x\";\n}", "must start with a key name", "top secret"},
		{"no colon", "justtext", "want NAME:BASE64", "justtext"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.text, "--signing-key-file f")
			require.Error(t, err)
			assert.Equal(t, clierr.ExitUsage, clierr.Code(err))
			assert.ErrorContains(t, err, tt.want)
			if tt.notWant != "" {
				assert.NotContains(t, err.Error(), tt.notWant)
			}
		})
	}
}

func TestLoadOrGenerateCorruptDefault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing-key.sec")
	require.NoError(t, os.WriteFile(path, []byte("garbage"), 0o600))
	_, gen, err := LoadOrGenerate(path)
	assert.False(t, gen)
	assert.Equal(t, clierr.ExitUsage, clierr.Code(err))
	assert.ErrorContains(t, err, "move "+path+" away")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "garbage", string(data), "a corrupt key is never overwritten")
}

func TestParsePublicKeys(t *testing.T) {
	a, err := Generate("staging.example.org-1")
	require.NoError(t, err)
	b, err := Generate("staging.example.org-2")
	require.NoError(t, err)
	secretPart := a.Secret()[len("staging.example.org-1:"):]
	tests := []struct {
		name    string
		text    string
		want    []string
		wantErr []string
	}{
		{name: "empty", text: " "},
		{name: "one", text: a.Public(), want: []string{a.Public()}},
		{name: "space-separated", text: " " + a.Public() + "  " + b.Public() + "\n", want: []string{a.Public(), b.Public()}},
		{name: "no name", text: "bm90LWEta2V5", wantErr: []string{"a key is not a Nix public key", "NAME:BASE64 of 32 bytes"}},
		{name: "short", text: "staging-1:bm90LWEta2V5", wantErr: []string{`key "staging-1" is not a Nix public key`, "nix key convert-secret-to-public"}},
		{name: "secret key", text: a.Public() + " " + a.Secret(), wantErr: []string{"this is a secret key: pass its public half"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePublicKeys(tt.text, "NIX_STAGING_PUBLIC_KEY")
			if tt.wantErr == nil {
				require.NoError(t, err)
				assert.Equal(t, tt.want, got)
				return
			}
			require.Error(t, err)
			assert.Equal(t, clierr.ExitUsage, clierr.Code(err))
			assert.Contains(t, err.Error(), "NIX_STAGING_PUBLIC_KEY: ")
			for _, w := range tt.wantErr {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), secretPart, "a secret key given by mistake is never quoted")
			assert.NotContains(t, err.Error(), "bm90LWEta2V5")
		})
	}
}
