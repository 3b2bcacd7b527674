package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Option is one option a module declares.
type Option struct {
	Path string // services.ollama-ipex.port
	File string // modules/nixos/ollama-ipex.nix
	// Open reports that the option's value has keys of its own (attrsOf,
	// submodule, an RFC 42 settings format), so names below it are values,
	// not options.
	Open bool
}

// Mask blanks out comments and string contents of Nix source (newlines stay,
// so offsets and lines keep), leaving the structure to scan.
func Mask(src string) string {
	b := []byte(src)
	blank := func(i int) {
		if b[i] != '\n' {
			b[i] = ' '
		}
	}
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '#':
			for ; i < len(b) && b[i] != '\n'; i++ {
				blank(i)
			}
		case b[i] == '/' && i+1 < len(b) && b[i+1] == '*':
			for ; i < len(b) && !(b[i] == '*' && i+1 < len(b) && b[i+1] == '/'); i++ {
				blank(i)
			}
			if i < len(b) {
				blank(i)
				blank(i + 1)
				i++
			}
		case b[i] == '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' && i+1 < len(b) {
					blank(i)
					i++
				}
				blank(i)
			}
		case b[i] == '\'' && i+1 < len(b) && b[i+1] == '\'':
			i += 2
			for ; i < len(b); i++ {
				if b[i] == '\'' && i+1 < len(b) && b[i+1] == '\'' {
					// '''  and ''$ ''\ are escapes inside an indented string.
					if i+2 < len(b) && (b[i+2] == '\'' || b[i+2] == '$' || b[i+2] == '\\') {
						blank(i)
						blank(i + 1)
						blank(i + 2)
						i += 2
						continue
					}
					i++
					break
				}
				blank(i)
			}
		}
	}
	return string(b)
}

var (
	optionsBinding = regexp.MustCompile(`(?:^|[^\w.'-])options((?:\.[A-Za-z_][\w'-]*)*)\s*=`)
	attrPath       = regexp.MustCompile(`^[A-Za-z_][\w'-]*(?:\.[A-Za-z_][\w'-]*)*`)
	optionCall     = regexp.MustCompile(`^(?:lib\.)?(?:mkOption|mkEnableOption|mkPackageOption)\b`)
	packageCall    = regexp.MustCompile(`^(?:lib\.)?mkPackageOption\b`)
	openType       = regexp.MustCompile(`attrsOf|lazyAttrsOf|submodule|freeformType|\.type\b|formats\.|inherit \([^)]*\) type`)
)

// scanner reads the option declarations of one masked Nix file.
type scanner struct {
	src, file string
	opts      []Option
}

// ScanOptions returns the services.*/programs.* options a module file
// declares: `options.services.x.y = lib.mkOption …`, `options.services.x = {
// … }` with nested attribute sets and dotted names, and `options = { … }`.
// A binding under services/programs whose value it cannot read is an error,
// so no declaration is silently missed.
func ScanOptions(file, src string) ([]Option, error) {
	s := &scanner{src: Mask(src), file: file}
	for _, m := range optionsBinding.FindAllStringSubmatchIndex(s.src, -1) {
		var prefix []string
		if m[3] > m[2] {
			prefix = strings.Split(s.src[m[2]+1:m[3]], ".")
		}
		if len(prefix) > 0 && prefix[0] != "services" && prefix[0] != "programs" {
			continue // e.g. a provisioning file's `options.path`, not a module option
		}
		if _, err := s.value(m[1], prefix); err != nil {
			return nil, err
		}
	}
	return s.opts, nil
}

func (s *scanner) skipSpace(i int) int {
	for i < len(s.src) && strings.ContainsRune(" \t\r\n", rune(s.src[i])) {
		i++
	}
	return i
}

func (s *scanner) errorf(i int, format string, args ...any) error {
	line := strings.Count(s.src[:min(i, len(s.src))], "\n") + 1
	return fmt.Errorf("%s:%d: %s", s.file, line, fmt.Sprintf(format, args...))
}

// exprEnd returns the offset of the `;` that ends the expression at i.
func (s *scanner) exprEnd(i int) (int, error) {
	depth := 0
	for ; i < len(s.src); i++ {
		switch s.src[i] {
		case '{', '(', '[':
			depth++
		case '}', ')', ']':
			depth--
			if depth < 0 {
				return 0, s.errorf(i, "unbalanced %q", s.src[i])
			}
		case ';':
			if depth == 0 {
				return i, nil
			}
		}
	}
	return 0, s.errorf(i, "no ';' after the binding")
}

// value reads the value of a binding at i whose attribute path is path and
// returns the offset just past it (at its `;` or closing brace).
func (s *scanner) value(i int, path []string) (int, error) {
	i = s.skipSpace(i)
	rest := s.src[i:]
	switch {
	case strings.HasPrefix(rest, "{"):
		return s.attrs(i+1, path)
	case optionCall.MatchString(rest):
		end, err := s.exprEnd(i)
		if err != nil {
			return 0, err
		}
		if len(path) < 2 || (path[0] != "services" && path[0] != "programs") {
			if len(path) == 0 || path[0] == "services" || path[0] == "programs" {
				return 0, s.errorf(i, "option %q declared outside services.* or programs.*", strings.Join(path, "."))
			}
			return end, nil
		}
		s.opts = append(s.opts, Option{Path: strings.Join(path, "."), File: s.file, Open: packageCall.MatchString(rest) || openType.MatchString(s.src[i:end])})
		return end, nil
	case len(path) > 0 && (path[0] == "services" || path[0] == "programs"):
		return 0, s.errorf(i, "cannot read the declaration of %s: write it as lib.mkOption/mkEnableOption/mkPackageOption or an attribute set of them", strings.Join(path, "."))
	default:
		return s.exprEnd(i)
	}
}

// attrs reads the bindings of an attribute set opened before i.
func (s *scanner) attrs(i int, prefix []string) (int, error) {
	for {
		i = s.skipSpace(i)
		if i >= len(s.src) {
			return 0, s.errorf(i, "unclosed attribute set")
		}
		if s.src[i] == '}' {
			return i + 1, nil
		}
		if strings.HasPrefix(s.src[i:], "inherit") {
			end, err := s.exprEnd(i)
			if err != nil {
				return 0, err
			}
			i = end + 1
			continue
		}
		name := attrPath.FindString(s.src[i:])
		if name == "" {
			return 0, s.errorf(i, "cannot read an attribute name under %s", strings.Join(prefix, "."))
		}
		i = s.skipSpace(i + len(name))
		if i >= len(s.src) || s.src[i] != '=' {
			return 0, s.errorf(i, "expected '=' after %s", name)
		}
		path := append(append([]string{}, prefix...), strings.Split(name, ".")...)
		end, err := s.value(i+1, path)
		if err != nil {
			return 0, err
		}
		i = s.skipSpace(end)
		if i < len(s.src) && s.src[i] == ';' {
			i++
		} else if e, err := s.exprEnd(i); err == nil {
			i = e + 1 // `{ … } // rest;`
		} else {
			return 0, err
		}
	}
}

// ModuleOptions scans every .nix file under dir (modules/) and returns the
// declared options by path.
func ModuleOptions(root, dir string) (map[string]Option, error) {
	out := map[string]Option{}
	err := walkNix(root, dir, func(file, src string) error {
		opts, err := ScanOptions(file, src)
		if err != nil {
			return err
		}
		for _, o := range opts {
			out[o.Path] = o
		}
		return nil
	})
	return out, err
}

// configBinding finds a binding of a services.*/programs.* path in Nix code.
var configBinding = regexp.MustCompile(`(?:^|[^\w.'-])((?:services|programs)(?:\.[A-Za-z_][\w'-]*)+)\s*=[^=>]`)

// ConfigPaths returns the option paths a Nix snippet sets: every
// `services.x.y = …` binding and, inside `services.x = { … }`, every nested
// binding with its full path. A snippet it cannot read yields the paths it
// read so far.
func ConfigPaths(src string) []string {
	s := &scanner{src: Mask(src)}
	var out []string
	var walk func(i int, path []string) (int, bool)
	walk = func(i int, path []string) (int, bool) {
		out = append(out, strings.Join(path, "."))
		i = s.skipSpace(i)
		if !strings.HasPrefix(s.src[i:], "{") {
			end, err := s.exprEnd(i)
			return end, err == nil
		}
		i++
		for {
			i = s.skipSpace(i)
			if i >= len(s.src) {
				return i, false
			}
			if s.src[i] == '}' {
				return i + 1, true
			}
			name := attrPath.FindString(s.src[i:])
			if name == "" || strings.HasPrefix(s.src[i:], "inherit") {
				return i, false
			}
			i = s.skipSpace(i + len(name))
			if i >= len(s.src) || s.src[i] != '=' {
				return i, false
			}
			end, ok := walk(i+1, append(append([]string{}, path...), strings.Split(name, ".")...))
			if !ok {
				return end, false
			}
			i = s.skipSpace(end)
			if i < len(s.src) && s.src[i] == ';' {
				i++
			}
		}
	}
	for _, m := range configBinding.FindAllStringSubmatchIndex(s.src, -1) {
		walk(m[3]+strings.Index(s.src[m[3]:], "=")+1, strings.Split(s.src[m[2]:m[3]], "."))
	}
	return out
}

// Ref is a module's use of an option: `cfg.health.enable` with
// `cfg = config.services.ipex.monitoring;`, or `config.services.x.y`.
type Ref struct {
	Path string // services.ipex.monitoring.health.enable
	File string
	Line int
}

var (
	fullLineComment = regexp.MustCompile(`(?m)^[ \t]*#.*$`)
	configAlias     = regexp.MustCompile(`(?:^|[^\w.'-])([A-Za-z_][\w'-]*)\s*=\s*config\.((?:services|programs)(?:\.[A-Za-z_][\w-]*)+)\s*(?:;|or\b)`)
	configUse       = regexp.MustCompile(`(?:^|[^\w.'-])config\.((?:services|programs)(?:\.[A-Za-z_][\w-]*)+)`)
)

// References returns the options a module file reads: through names bound
// to `config.services.…`/`config.programs.…` (cfg-relative names such as
// `cfg.gpu.driver`, `ollama.port`) and written out in full. Strings are
// read too (`${cfg.port}`); whole-line comments are not.
func References(file, src string) []Ref {
	src = fullLineComment.ReplaceAllStringFunc(src, func(c string) string { return strings.Repeat(" ", len(c)) })
	line := func(i int) int { return strings.Count(src[:i], "\n") + 1 }
	var out []Ref
	for _, m := range configUse.FindAllStringSubmatchIndex(src, -1) {
		out = append(out, Ref{Path: src[m[2]:m[3]], File: file, Line: line(m[2])})
	}
	for _, a := range configAlias.FindAllStringSubmatch(src, -1) {
		use := regexp.MustCompile(`(?:^|[^\w.'-])` + regexp.QuoteMeta(a[1]) + `((?:\.[A-Za-z_][\w-]*)+)`)
		for _, m := range use.FindAllStringSubmatchIndex(src, -1) {
			out = append(out, Ref{Path: a[2] + src[m[2]:m[3]], File: file, Line: line(m[2])})
		}
	}
	return out
}

// ModuleReferences returns the option references of every .nix file under
// dir.
func ModuleReferences(root, dir string) ([]Ref, error) {
	var out []Ref
	err := walkNix(root, dir, func(file, src string) error {
		out = append(out, References(file, src)...)
		return nil
	})
	return out, err
}

// walkNix calls fn with the path relative to root and the text of every
// .nix file under dir.
func walkNix(root, dir string, fn func(file, src string) error) error {
	return filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".nix") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return fn(relTo(root, p), string(b))
	})
}
