package stage

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Feature is a machine capability a stage can require.
type Feature string

// Features known to the stages and to `ci matrix`.
const (
	// IntelGPU is a /dev/dri/renderD* node driven by i915 or xe.
	IntelGPU Feature = "intel-gpu"
	// KVM is a /dev/kvm that opens read-write (NixOS VM tests).
	KVM Feature = "kvm"
	// BigMemory is at least 16 GiB of memory.
	BigMemory Feature = "big-memory"
)

// AllFeatures lists the features --assume accepts.
var AllFeatures = []Feature{IntelGPU, KVM, BigMemory}

// ParseFeature checks an --assume value.
func ParseFeature(s string) (Feature, error) {
	if f := Feature(s); slices.Contains(AllFeatures, f) {
		return f, nil
	}
	names := make([]string, len(AllFeatures))
	for i, f := range AllFeatures {
		names[i] = string(f)
	}
	return "", fmt.Errorf("unknown feature %q: use one of %s", s, strings.Join(names, ", "))
}

// BigMemoryBytes is the memory the big-memory feature stands for: 16 GiB
// installed. MemTotal excludes what firmware, the kernel and an integrated
// GPU's stolen memory take at boot, so up to memorySlack less still counts.
const (
	BigMemoryBytes = 16 << 30
	memorySlack    = 1 << 30
)

// IntelDrivers are the kernel drivers of Intel GPUs.
var IntelDrivers = []string{"i915", "xe"}

// Host detects the features of this machine from /sys, /dev and /proc. The
// roots are injectable so tests use fake trees.
type Host struct {
	// SysRoot, DevRoot and ProcRoot default to /sys, /dev and /proc.
	SysRoot, DevRoot, ProcRoot string
	// Assume lists features the runner vouches for (--assume).
	Assume []Feature
}

func (h Host) root(r, def string) string {
	if r == "" {
		return def
	}
	return r
}

// Has reports whether the machine has f. The detail says what was found
// (when present) or why not (when missing), in words for the report.
func (h Host) Has(f Feature) (bool, string) {
	for _, a := range h.Assume {
		if a == f {
			return true, "assumed (--assume " + string(f) + ")"
		}
	}
	switch f {
	case IntelGPU:
		return h.intelGPU()
	case KVM:
		return h.kvm()
	case BigMemory:
		return h.bigMemory()
	}
	return false, "unknown feature " + string(f)
}

// Missing returns why each missing feature of fs is missing (joined by "; "),
// or "" when the machine has them all.
func (h Host) Missing(fs []Feature) string {
	var reasons []string
	for _, f := range fs {
		if ok, why := h.Has(f); !ok {
			reasons = append(reasons, fmt.Sprintf("no %s on this machine (%s)", f, why))
		}
	}
	return strings.Join(reasons, "; ")
}

func (h Host) intelGPU() (bool, string) {
	dev := h.root(h.DevRoot, "/dev")
	sys := h.root(h.SysRoot, "/sys")
	nodes, _ := filepath.Glob(filepath.Join(dev, "dri", "renderD*"))
	sort.Strings(nodes)
	if len(nodes) == 0 {
		return false, "no " + filepath.Join(dev, "dri", "renderD*") + " node"
	}
	var seen []string
	for _, n := range nodes {
		name := filepath.Base(n)
		link, err := os.Readlink(filepath.Join(sys, "class", "drm", name, "device", "driver"))
		if err != nil {
			seen = append(seen, name+": driver unknown")
			continue
		}
		drv := filepath.Base(link)
		for _, d := range IntelDrivers {
			if drv == d {
				return true, name + " (" + drv + ")"
			}
		}
		seen = append(seen, name+": "+drv)
	}
	return false, "render nodes are not Intel (i915/xe): " + strings.Join(seen, ", ")
}

func (h Host) kvm() (bool, string) {
	p := filepath.Join(h.root(h.DevRoot, "/dev"), "kvm")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, p + " does not exist"
		}
		msg := err.Error()
		var pe *os.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return false, p + " is not usable: " + msg
	}
	f.Close()
	return true, p
}

func (h Host) bigMemory() (bool, string) {
	total, err := MemTotal(h.root(h.ProcRoot, "/proc"))
	if err != nil {
		return false, err.Error()
	}
	gib := fmt.Sprintf("%.1f GiB", float64(total)/(1<<30))
	if total+memorySlack < BigMemoryBytes {
		return false, gib + " of memory, 16 GiB needed"
	}
	return true, gib + " of memory"
}

// MemTotal reads MemTotal from <procRoot>/meminfo, in bytes.
func MemTotal(procRoot string) (uint64, error) {
	p := filepath.Join(procRoot, "meminfo")
	f, err := os.Open(p)
	if err != nil {
		return 0, fmt.Errorf("cannot read memory size: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			n, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: bad MemTotal %q", p, fields[1])
			}
			if len(fields) >= 3 && fields[2] != "kB" {
				return 0, fmt.Errorf("%s: unexpected unit %q", p, fields[2])
			}
			return n * 1024, nil
		}
	}
	return 0, fmt.Errorf("%s has no MemTotal line", p)
}
