// Package atomicfile writes files that appear whole and at once: the data
// goes to a temporary file first, which is then linked into place.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// Write writes data to path through a temporary file beside it that is
// renamed into place, creating path's directory when missing: readers see
// the old file or the whole new one, never half of it.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := WriteTemp(dir, "."+filepath.Base(path)+".*", data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Rename(tmp, path)
}

// WriteTemp writes data to a new temporary file in dir, named after pattern
// as os.CreateTemp names it, with mode perm, and returns its path. The
// caller moves or links it into place and removes it.
func WriteTemp(dir, pattern string, data []byte, perm os.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", errors.Join(err, os.Remove(f.Name()))
	}
	return f.Name(), nil
}

// Create writes data to path, which must not exist yet, through a temporary
// file in tmpDir (on the same file system; pattern names it): path appears
// whole and at once, and is never replaced. When path exists the error wraps
// os.ErrExist; of concurrent creators of one path, exactly one succeeds.
func Create(tmpDir, pattern, path string, data []byte, perm os.FileMode) error {
	tmp, err := WriteTemp(tmpDir, pattern, data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Link(tmp, path)
}
