package golden

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a testing.TB that records the failures testify reports
// (Errorf, FailNow) instead of failing the test.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) FailNow()              { r.failed = true; panic(r) }

// check runs Assert against a recorder and reports whether it failed.
func check(t *testing.T, name string, got []byte) (failed bool) {
	r := &recorder{TB: t}
	defer func() {
		if p := recover(); p != nil && p != r {
			panic(p)
		}
		failed = r.failed
	}()
	Assert(r, name, got)
	return r.failed
}

func TestAssert(t *testing.T) {
	t.Chdir(t.TempDir())
	require.NoError(t, os.MkdirAll("testdata", 0o755))
	require.NoError(t, os.WriteFile(filepath.Join("testdata", "msg.txt"), []byte("hello\n"), 0o644))

	assert.False(t, check(t, "msg.txt", []byte("hello\n")), "equal text passes")
	assert.True(t, check(t, "msg.txt", []byte("hello")), "different text fails")
	assert.True(t, check(t, "missing.txt", []byte("x")), "a missing golden file fails")

	*update = true
	t.Cleanup(func() { *update = false })
	assert.False(t, check(t, "new/msg.txt", []byte("new\n")), "-update writes the file")
	got, err := os.ReadFile(filepath.Join("testdata", "new", "msg.txt"))
	require.NoError(t, err)
	assert.Equal(t, "new\n", string(got))
}
