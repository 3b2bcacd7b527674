package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteTemp(t *testing.T) {
	dir := t.TempDir()
	p, err := WriteTemp(dir, ".tmp-*", []byte("data"), 0o640)
	require.NoError(t, err)
	assert.Equal(t, dir, filepath.Dir(p))
	got, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "data", string(got))
	st, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), st.Mode().Perm())

	_, err = WriteTemp(filepath.Join(dir, "missing"), ".tmp-*", nil, 0o600)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestCreate(t *testing.T) {
	dir, tmp := t.TempDir(), t.TempDir()
	path := filepath.Join(dir, "release.json")
	require.NoError(t, Create(tmp, ".release-*", path, []byte("first"), 0o600))
	err := Create(tmp, ".release-*", path, []byte("second"), 0o600)
	require.ErrorIs(t, err, os.ErrExist)

	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "first", string(got), "an existing file is never replaced")
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	assert.Empty(t, left, "no temporary file is left behind")
}

// TestCreateConcurrently: of eight creators of one path exactly one
// succeeds, and the file holds its data whole.
func TestCreateConcurrently(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "asset")
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = Create(dir, ".asset-*", path, []byte{byte('a' + i)}, 0o644)
		}()
	}
	wg.Wait()
	var won []int
	for i, err := range errs {
		if err == nil {
			won = append(won, i)
			continue
		}
		assert.True(t, errors.Is(err, os.ErrExist), "creator %d: %v", i, err)
	}
	require.Len(t, won, 1)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string([]byte{byte('a' + won[0])}), string(got))
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "report.json")
	require.NoError(t, Write(path, []byte("first"), 0o644), "a missing directory is created")
	require.NoError(t, Write(path, []byte("second"), 0o600), "an existing file is replaced")
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "second", string(got))
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// A path that cannot be renamed onto (a directory) fails and leaves
	// neither the old contents changed nor a temporary file behind.
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub", "taken"), 0o755))
	require.Error(t, Write(filepath.Join(dir, "sub", "taken"), []byte("x"), 0o644))
	entries, err := os.ReadDir(filepath.Join(dir, "sub"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"report.json", "taken"}, names, "no temporary file is left")
}
