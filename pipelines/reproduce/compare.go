package reproduce

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Kinds of difference between two trees.
const (
	DiffContent = "content"    // both are files with different bytes
	DiffMode    = "mode"       // executable bit differs
	DiffType    = "type"       // file, directory and symlink differ
	DiffLink    = "target"     // symlinks point elsewhere
	DiffOnlyA   = "only-first" // present in the first build only
	DiffOnlyB   = "only-second"
)

// Difference is one differing file; Path is relative to the tree ("." for
// the root, when the output is a single file).
type Difference struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
}

// CompareTrees compares two store trees the way a NAR sees them (type,
// executable bit, symlink target, bytes) and returns the differences
// sorted by path.
func CompareTrees(a, b string) ([]Difference, error) {
	var out []Difference
	if err := compare(a, b, ".", &out); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "dir"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	default:
		return "file"
	}
}

func compare(a, b, rel string, out *[]Difference) error {
	ia, ib, err := both(os.Lstat, a, b)
	if err != nil {
		return err
	}
	ka, kb := kindOf(ia.Mode()), kindOf(ib.Mode())
	if ka != kb {
		*out = append(*out, Difference{Path: rel, Kind: DiffType})
		return nil
	}
	switch ka {
	case "symlink":
		ta, tb, err := both(os.Readlink, a, b)
		if err != nil {
			return err
		}
		if ta != tb {
			*out = append(*out, Difference{Path: rel, Kind: DiffLink})
		}
	case "file":
		if ia.Mode()&0o100 != ib.Mode()&0o100 {
			*out = append(*out, Difference{Path: rel, Kind: DiffMode})
			return nil
		}
		same, err := sameBytes(a, b, ia.Size(), ib.Size())
		if err != nil {
			return err
		}
		if !same {
			*out = append(*out, Difference{Path: rel, Kind: DiffContent})
		}
	case "dir":
		ea, eb, err := both(names, a, b)
		if err != nil {
			return err
		}
		for n := range ea {
			child := filepath.Join(rel, n)
			if !eb[n] {
				*out = append(*out, Difference{Path: child, Kind: DiffOnlyA})
				continue
			}
			if err := compare(filepath.Join(a, n), filepath.Join(b, n), child, out); err != nil {
				return err
			}
		}
		for n := range eb {
			if !ea[n] {
				*out = append(*out, Difference{Path: filepath.Join(rel, n), Kind: DiffOnlyB})
			}
		}
	}
	return nil
}

// both applies read to a and to b.
func both[T any](read func(string) (T, error), a, b string) (T, T, error) {
	va, err := read(a)
	if err != nil {
		var zero T
		return zero, zero, err
	}
	vb, err := read(b)
	return va, vb, err
}

// names is the set of dir's entries.
func names(dir string) (map[string]bool, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	m := make(map[string]bool, len(es))
	for _, e := range es {
		m[e.Name()] = true
	}
	return m, nil
}

func sameBytes(a, b string, sa, sb int64) (bool, error) {
	if sa != sb {
		return false, nil
	}
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		doneA := errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF)
		doneB := errors.Is(eb, io.EOF) || errors.Is(eb, io.ErrUnexpectedEOF)
		if ea != nil && !doneA {
			return false, ea
		}
		if eb != nil && !doneB {
			return false, eb
		}
		if doneA || doneB {
			return doneA == doneB, nil
		}
	}
}
