package fakedagger

import (
	"fmt"
	"slices"
)

// Container is what an exec ran in, read from its chain of calls.
type Container struct {
	// Pulled is the address of the image pulled ("from"); Imported is the
	// host path of the OCI tarball imported ("import").
	Pulled, Imported string
	// Caches are the cache volumes mounted, in the order mounted.
	Caches []CacheMount
	// Dirs are the host directories mounted, in the order mounted.
	Dirs []HostDir
	// Expect is withExec's expect argument ("ANY": a failing command is a
	// result, not an error).
	Expect string
}

// CacheMount is a cache volume mounted at Path.
type CacheMount struct {
	Path, Key, Sharing string
}

// HostDir is the host's directory Host mounted at Path, without the
// (sorted) Exclude patterns.
type HostDir struct {
	Path, Host string
	Exclude    []string
}

// Container reads what the exec x ran in. A source that is not the host's
// file or directory, or a cache that is not a cache volume, reads as a text
// that says so, which no expected path or key equals.
func (s *Server) Container(x *Obj) Container {
	c := Container{Expect: x.Str("expect")}
	if from := x.Find("from"); from != nil {
		c.Pulled = from.Str("address")
	}
	if imp := x.Find("import"); imp != nil {
		c.Imported = s.HostPath(imp.Str("source"), "file")
	}
	for _, m := range x.FindAll("withMountedCache") {
		key := fmt.Sprintf("not a cache volume: %s", m.Str("cache"))
		if vol := s.Resolve(m.Str("cache")); vol != nil && vol.Field == "cacheVolume" {
			key = vol.Str("key")
		}
		c.Caches = append(c.Caches, CacheMount{Path: m.Str("path"), Key: key, Sharing: m.Str("sharing")})
	}
	for _, m := range x.FindAll("withMountedDirectory") {
		d := HostDir{Path: m.Str("path"), Host: s.HostPath(m.Str("source"), "directory")}
		if src := s.Resolve(m.Str("source")); src != nil {
			d.Exclude = slices.Sorted(slices.Values(src.Strings("exclude")))
		}
		c.Dirs = append(c.Dirs, d)
	}
	return c
}
