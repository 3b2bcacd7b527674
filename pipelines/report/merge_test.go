package report

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMerge(t *testing.T) {
	shard := func(engine string, outs ...Output) *Report {
		return &Report{Flake: "/src", Rev: "abc", Engine: engine, Outputs: outs}
	}
	a := Output{Attr: "packages.x86_64-linux.a", DrvPath: "/nix/store/a.drv", OutPaths: []string{"/nix/store/a"}, Status: StatusBuilt}
	aSkipped := Output{Attr: a.Attr, DrvPath: a.DrvPath, OutPaths: a.OutPaths, Status: StatusSkipped, Reason: "in shard 1/2"}
	b := Output{Attr: "packages.x86_64-linux.b", DrvPath: "/nix/store/b.drv", OutPaths: []string{"/nix/store/b"}, Status: StatusFailed}
	bSkipped := Output{Attr: b.Attr, Status: StatusSkipped, Reason: "in shard 2/2"}

	got, err := Merge(shard("host", a, bSkipped), shard("host", aSkipped, b))
	require.NoError(t, err)
	assert.Equal(t, []Output{a, b}, got.Outputs)
	assert.Equal(t, "host", got.Engine)
	assert.Equal(t, map[string]int{StatusBuilt: 1, StatusFailed: 1}, got.Counts())

	got, err = Merge(shard("host", a), shard("dagger", b))
	require.NoError(t, err)
	assert.Equal(t, "mixed", got.Engine)

	other := Output{Attr: a.Attr, DrvPath: "/nix/store/other.drv", OutPaths: []string{"/nix/store/other"}, Status: StatusBuilt}
	_, err = Merge(shard("host", a), shard("host", other))
	assert.ErrorContains(t, err, "disagree")

	_, err = Merge(shard("host", a), &Report{Flake: "/src", Rev: "def"})
	assert.ErrorContains(t, err, "merge the shards of one build only")

	// A present output says as much as a built one: it wins over the skip
	// of the shard that did not own it, and over a cached answer.
	p := Output{Attr: "packages.x86_64-linux.p", DrvPath: "/nix/store/p.drv", OutPaths: []string{"/nix/store/p"}, Status: StatusPresent}
	pSkipped := Output{Attr: p.Attr, DrvPath: p.DrvPath, OutPaths: p.OutPaths, Status: StatusSkipped}
	pCached := Output{Attr: p.Attr, DrvPath: p.DrvPath, OutPaths: p.OutPaths, Status: StatusCached}
	got, err = Merge(shard("host", pSkipped), shard("host", p), shard("host", pCached))
	require.NoError(t, err)
	assert.Equal(t, []Output{p}, got.Outputs)

	_, err = Merge()
	assert.Error(t, err)
}
