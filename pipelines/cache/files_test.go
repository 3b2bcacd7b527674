package cache

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/internal/testnginx"
)

func TestNix32(t *testing.T) {
	tests := []struct{ in, want string }{
		// nix-hash --type sha256 --to-base32 of sha256("") and sha256("hello")
		{"", "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"},
		{"hello", "094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic"},
	}
	for _, tt := range tests {
		sum := sha256.Sum256([]byte(tt.in))
		assert.Equal(t, tt.want, Nix32(sum[:]))
		assert.Equal(t, "sha256:"+tt.want, SHA256Nix32(sum))
	}
}

// TestNarInfoSignedByNix checks signature handling against nix itself: a
// path signed by `nix store sign` and copied to a file:// cache verifies
// with the public key, not with another, and not once a field changes; a
// signature made here is one nix accepts.
func TestNarInfoSignedByNix(t *testing.T) {
	testlib.OfflineNix(t)
	dir := t.TempDir()
	drv := filepath.Join(dir, "d.nix")
	require.NoError(t, os.WriteFile(drv, []byte(`derivation { name = "sig"; system = "x86_64-linux"; builder = "/bin/sh"; args = ["-c" "echo `+testlib.Nonce()+` > $out"]; }`), 0o644))
	nix := func(args ...string) string {
		out, err := exec.CommandContext(t.Context(), "nix", append([]string{"--extra-experimental-features", "nix-command flakes"}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
		return strings.TrimSpace(string(out))
	}
	out, err := exec.CommandContext(t.Context(), "nix-build", "--no-out-link", drv).Output()
	require.NoError(t, err)
	p := strings.TrimSpace(string(out))
	secFile := filepath.Join(dir, "k.sec")
	require.NoError(t, os.WriteFile(secFile, []byte(nix("key", "generate-secret", "--key-name", "t-1")), 0o600))
	sec, err := os.ReadFile(secFile)
	require.NoError(t, err)
	_, b64, _ := strings.Cut(strings.TrimSpace(string(sec)), ":")
	raw, err := base64.StdEncoding.DecodeString(b64)
	require.NoError(t, err)
	priv := ed25519.PrivateKey(raw)
	pub := "t-1:" + base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
	nix("store", "sign", "--key-file", secFile, p)
	cacheDir := filepath.Join(dir, "cache")
	nix("copy", "--to", "file://"+cacheDir, p)

	data, err := os.ReadFile(filepath.Join(cacheDir, NarInfoName(p)))
	require.NoError(t, err)
	ni, err := ParseNarInfo(data)
	require.NoError(t, err)
	assert.Equal(t, p, ni.StorePath)
	assert.True(t, ni.SignedBy(pub), "nix's signature verifies")
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	assert.False(t, ni.SignedBy("t-1:"+base64.StdEncoding.EncodeToString(other.Public().(ed25519.PublicKey))))
	assert.Equal(t, []string{"t-1"}, ni.SigKeys())
	nar, err := os.ReadFile(filepath.Join(cacheDir, ni.URL))
	require.NoError(t, err)
	assert.Equal(t, ni.FileHash, SHA256Nix32(sha256.Sum256(nar)))
	assert.Equal(t, string(data), string(ni.Bytes()), "written back unchanged")

	// A signature made here over the fingerprint is one nix accepts.
	_, mine, _ := ed25519.GenerateKey(rand.Reader)
	minePub := "m-1:" + base64.StdEncoding.EncodeToString(mine.Public().(ed25519.PublicKey))
	ni.AddSig("m-1:" + base64.StdEncoding.EncodeToString(ed25519.Sign(mine, []byte(ni.Fingerprint()))))
	assert.True(t, ni.KeepSigsOf(minePub), "t-1's signature is dropped")
	assert.Equal(t, []string{"m-1"}, ni.SigKeys())
	require.NoError(t, os.WriteFile(filepath.Join(cacheDir, NarInfoName(p)), ni.Bytes(), 0o644))
	store := filepath.Join(t.TempDir(), "store")
	nix("copy", "--from", "file://"+cacheDir, "--to", store, "--option", "trusted-public-keys", minePub, p)

	ni.NarSize++
	assert.False(t, ni.SignedBy(minePub), "a changed field breaks the signature")
}

func TestCheckWritable(t *testing.T) {
	ro := t.TempDir()
	require.NoError(t, os.Chmod(ro, 0o555))
	t.Cleanup(func() { os.Chmod(ro, 0o755) })
	forbidden := func(code int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.Method {
			case http.MethodGet:
				http.NotFound(w, r)
			case http.MethodPut:
				w.WriteHeader(code)
			default:
				t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
			}
		}))
		t.Cleanup(srv.Close)
		return srv.URL + "/cache"
	}
	newDir := filepath.Join(t.TempDir(), "a", "b")
	tests := []struct {
		name     string
		uri      string
		wantCode int
		wantMsg  string
	}{
		{"file under /proc", "file:///proc/x", clierr.ExitUsage, "cannot be written"},
		{"file is a file", "file:///etc/hostname", clierr.ExitUsage, "is not a directory"},
		{"new dir", "file://" + newDir, clierr.ExitOK, ""},
		{"http 403", forbidden(http.StatusForbidden), clierr.ExitUsage, "answered 403 Forbidden"},
		{"http 405", forbidden(http.StatusMethodNotAllowed), clierr.ExitUsage, "answered 405 Method Not Allowed"},
		{"s3 left to nix", "s3://bucket?region=x", clierr.ExitOK, ""},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		tests = append(tests, struct {
			name     string
			uri      string
			wantCode int
			wantMsg  string
		}{"read-only dir", "file://" + ro + "/c", clierr.ExitUsage, "permission denied"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckWritable(t.Context(), tt.uri)
			assert.Equal(t, tt.wantCode, clierr.Code(err), "err: %v", err)
			if tt.wantMsg != "" {
				assert.ErrorContains(t, err, tt.wantMsg)
			}
		})
	}
	_, err := os.Stat(filepath.Dir(newDir))
	assert.True(t, os.IsNotExist(err), "the check creates nothing")
}

// TestCheckWritableNginx writes nix-cache-info back unchanged on a real
// WebDAV server, or writes the one nix would write first.
func TestCheckWritableNginx(t *testing.T) {
	s := testnginx.New(t)
	require.NoError(t, CheckWritable(t.Context(), s.URL()))
	data, err := os.ReadFile(filepath.Join(s.Root, "nix-cache-info"))
	require.NoError(t, err)
	assert.Equal(t, "StoreDir: /nix/store\n", string(data))
	custom := "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n"
	require.NoError(t, os.WriteFile(filepath.Join(s.Root, "nix-cache-info"), []byte(custom), 0o644))
	require.NoError(t, CheckWritable(t.Context(), s.URL()))
	data, err = os.ReadFile(filepath.Join(s.Root, "nix-cache-info"))
	require.NoError(t, err)
	assert.Equal(t, custom, string(data), "an existing nix-cache-info is kept as it was")
}

func TestMissingDirWarning(t *testing.T) {
	assert.Contains(t, MissingDirWarning("file:///proc/x"), "cache directory /proc/x does not exist")
	assert.Empty(t, MissingDirWarning("file://"+t.TempDir()))
	assert.Empty(t, MissingDirWarning("https://cache.example.org"))
}

func TestFilesRoundTrip(t *testing.T) {
	s := testnginx.New(t)
	for _, f := range []Files{NewFiles("file://" + t.TempDir()), NewFiles(s.URL())} {
		t.Run(f.URI(), func(t *testing.T) {
			_, err := f.Get(t.Context(), "x/y.narinfo")
			require.ErrorIs(t, err, os.ErrNotExist)
			require.NoError(t, f.Put(t.Context(), "x/y.narinfo", []byte("hello")))
			got, err := f.Get(t.Context(), "x/y.narinfo")
			require.NoError(t, err)
			assert.Equal(t, "hello", string(got))
			size, err := f.Size(t.Context(), "x/y.narinfo")
			require.NoError(t, err)
			assert.Equal(t, int64(5), size)
			_, err = f.Size(t.Context(), "x/none")
			require.ErrorIs(t, err, os.ErrNotExist)
			require.NoError(t, f.Delete(t.Context(), "x/y.narinfo"))
			require.NoError(t, f.Delete(t.Context(), "x/y.narinfo"), "deleting a missing file is fine")
			_, err = f.Get(t.Context(), "x/y.narinfo")
			require.ErrorIs(t, err, os.ErrNotExist)
		})
	}
}
