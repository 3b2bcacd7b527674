package reproduce

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// maxNARString bounds a name or symlink target read from a NAR.
const maxNARString = 1 << 16

// UnpackNAR writes the file system object of a NAR (nix store dump-path)
// to dst, which must not exist: a file, a symlink or a directory tree.
func UnpackNAR(r io.Reader, dst string) error {
	n := &narReader{r: bufio.NewReader(r)}
	if s, err := n.str(); err != nil || s != "nix-archive-1" {
		return fmt.Errorf("not a NAR (magic %q): %v", s, err)
	}
	return n.object(dst)
}

type narReader struct{ r *bufio.Reader }

func (n *narReader) u64() (uint64, error) {
	var b [8]byte
	if _, err := io.ReadFull(n.r, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

func (n *narReader) pad(l uint64) error {
	if p := (8 - l%8) % 8; p > 0 {
		_, err := n.r.Discard(int(p))
		return err
	}
	return nil
}

func (n *narReader) str() (string, error) {
	l, err := n.u64()
	if err != nil {
		return "", err
	}
	if l > maxNARString {
		return "", fmt.Errorf("NAR string of %d bytes", l)
	}
	b := make([]byte, l)
	if _, err := io.ReadFull(n.r, b); err != nil {
		return "", err
	}
	return string(b), n.pad(l)
}

func (n *narReader) expect(want string) error {
	s, err := n.str()
	if err != nil {
		return err
	}
	if s != want {
		return fmt.Errorf("NAR: want %q, got %q", want, s)
	}
	return nil
}

// field reads an object's opening "(", the token key and the string that
// follows it: the start of an object ("type") or of an entry ("name").
func (n *narReader) field(key string) (string, error) {
	if err := n.expect("("); err != nil {
		return "", err
	}
	if err := n.expect(key); err != nil {
		return "", err
	}
	return n.str()
}

// object unpacks the NAR object that comes next to dst: a regular file, a
// symlink or a directory.
func (n *narReader) object(dst string) error {
	typ, err := n.field("type")
	if err != nil {
		return err
	}
	switch typ {
	case "regular":
		err = n.regular(dst)
	case "symlink":
		err = n.symlink(dst)
	case "directory":
		// A directory's entries end with the ")" that closes it.
		return n.directory(dst)
	default:
		return fmt.Errorf("NAR: unknown type %q", typ)
	}
	if err != nil {
		return err
	}
	return n.expect(")")
}

// regular writes a regular file's contents to dst, read-only, executable
// when the NAR says so.
func (n *narReader) regular(dst string) error {
	tag, err := n.str()
	if err != nil {
		return err
	}
	mode := os.FileMode(0o444)
	if tag == "executable" {
		mode = 0o555
		if err := n.expect(""); err != nil {
			return err
		}
		if tag, err = n.str(); err != nil {
			return err
		}
	}
	if tag != "contents" {
		return fmt.Errorf("NAR: want contents, got %q", tag)
	}
	size, err := n.u64()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, n.r, int64(size)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(dst, mode); err != nil {
		return err
	}
	return n.pad(size)
}

// symlink makes dst a symlink to the NAR's target.
func (n *narReader) symlink(dst string) error {
	if err := n.expect("target"); err != nil {
		return err
	}
	target, err := n.str()
	if err != nil {
		return err
	}
	return os.Symlink(target, dst)
}

// directory makes dst and unpacks its entries into it, up to and
// including the ")" that closes the directory object.
func (n *narReader) directory(dst string) error {
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	for {
		tag, err := n.str()
		if err != nil {
			return err
		}
		if tag == ")" {
			return nil // directories stay writable, so the copy can be removed
		}
		if tag != "entry" {
			return fmt.Errorf("NAR: want entry, got %q", tag)
		}
		if err := n.entry(dst); err != nil {
			return err
		}
	}
}

// entry unpacks one named directory entry into dir; a name that could
// leave dir is refused.
func (n *narReader) entry(dir string) error {
	name, err := n.field("name")
	if err != nil {
		return err
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("NAR: bad entry name %q", name)
	}
	if err := n.expect("node"); err != nil {
		return err
	}
	if err := n.object(filepath.Join(dir, name)); err != nil {
		return err
	}
	return n.expect(")")
}
