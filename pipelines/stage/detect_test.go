package stage

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeTree builds /sys, /dev and /proc roots with the given render nodes
// (name → driver, "" for no driver link), kvm node and MemTotal in kB.
func fakeTree(t *testing.T, nodes map[string]string, kvm bool, memKB string) Host {
	t.Helper()
	root := t.TempDir()
	h := Host{SysRoot: filepath.Join(root, "sys"), DevRoot: filepath.Join(root, "dev"), ProcRoot: filepath.Join(root, "proc")}
	for _, d := range []string{h.SysRoot, filepath.Join(h.DevRoot, "dri"), h.ProcRoot} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	for name, drv := range nodes {
		require.NoError(t, os.WriteFile(filepath.Join(h.DevRoot, "dri", name), nil, 0o600))
		dev := filepath.Join(h.SysRoot, "devices", "pci0000:00", "0000:00:02.0-"+name)
		require.NoError(t, os.MkdirAll(dev, 0o755))
		cls := filepath.Join(h.SysRoot, "class", "drm", name)
		require.NoError(t, os.MkdirAll(cls, 0o755))
		require.NoError(t, os.Symlink(dev, filepath.Join(cls, "device")))
		if drv != "" {
			require.NoError(t, os.Symlink("../../../bus/pci/drivers/"+drv, filepath.Join(dev, "driver")))
		}
	}
	if kvm {
		require.NoError(t, os.WriteFile(filepath.Join(h.DevRoot, "kvm"), nil, 0o600))
	}
	if memKB != "" {
		require.NoError(t, os.WriteFile(filepath.Join(h.ProcRoot, "meminfo"),
			[]byte("MemTotal:       "+memKB+" kB\nMemFree:         1000 kB\n"), 0o644))
	}
	return h
}

func TestIntelGPU(t *testing.T) {
	tests := []struct {
		name    string
		nodes   map[string]string
		assume  []Feature
		want    bool
		wantWhy string
	}{
		{name: "i915", nodes: map[string]string{"renderD128": "i915"}, want: true, wantWhy: "renderD128 (i915)"},
		{name: "xe", nodes: map[string]string{"renderD129": "xe"}, want: true, wantWhy: "renderD129 (xe)"},
		{name: "amd then intel", nodes: map[string]string{"renderD128": "amdgpu", "renderD129": "i915"}, want: true, wantWhy: "renderD129 (i915)"},
		{name: "amdgpu only", nodes: map[string]string{"renderD128": "amdgpu"}, wantWhy: "renderD128: amdgpu"},
		{name: "no driver link", nodes: map[string]string{"renderD128": ""}, wantWhy: "renderD128: driver unknown"},
		{name: "no nodes", wantWhy: "renderD* node"},
		{name: "assumed", assume: []Feature{IntelGPU}, want: true, wantWhy: "--assume intel-gpu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fakeTree(t, tt.nodes, false, "")
			h.Assume = tt.assume
			got, why := h.Has(IntelGPU)
			assert.Equal(t, tt.want, got)
			assert.Contains(t, why, tt.wantWhy)
		})
	}
}

func TestKVM(t *testing.T) {
	h := fakeTree(t, nil, true, "")
	ok, why := h.Has(KVM)
	assert.True(t, ok, why)

	h = fakeTree(t, nil, false, "")
	ok, why = h.Has(KVM)
	assert.False(t, ok)
	assert.Contains(t, why, "does not exist")

	if os.Geteuid() != 0 {
		h = fakeTree(t, nil, true, "")
		require.NoError(t, os.Chmod(filepath.Join(h.DevRoot, "kvm"), 0o400))
		ok, why = h.Has(KVM)
		assert.False(t, ok)
		assert.Contains(t, why, "not usable: permission denied")
	}
}

func TestBigMemory(t *testing.T) {
	tests := []struct {
		name, memKB string
		want        bool
		wantWhy     string
	}{
		{name: "32 GiB", memKB: "32768000", want: true, wantWhy: "31.2 GiB"},
		{name: "16 GiB machine minus kernel reserve", memKB: "16094000", want: true},
		{name: "8 GiB", memKB: "8000000", wantWhy: "16 GiB needed"},
		{name: "no meminfo", wantWhy: "cannot read memory size"},
		{name: "garbage", memKB: "lots", wantWhy: "bad MemTotal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fakeTree(t, nil, false, tt.memKB)
			got, why := h.Has(BigMemory)
			assert.Equal(t, tt.want, got, why)
			assert.Contains(t, why, tt.wantWhy)
		})
	}
}

func TestMissing(t *testing.T) {
	h := fakeTree(t, map[string]string{"renderD128": "i915"}, false, "4000000")
	assert.Equal(t, "", h.Missing([]Feature{IntelGPU}))
	why := h.Missing([]Feature{IntelGPU, BigMemory, KVM})
	assert.Contains(t, why, "no big-memory on this machine")
	assert.Contains(t, why, "no kvm on this machine")
	assert.NotContains(t, why, "intel-gpu")
}

func TestParseFeature(t *testing.T) {
	f, err := ParseFeature("intel-gpu")
	require.NoError(t, err)
	assert.Equal(t, IntelGPU, f)
	_, err = ParseFeature("nvidia-gpu")
	assert.ErrorContains(t, err, "use one of intel-gpu, kvm, big-memory")
}
