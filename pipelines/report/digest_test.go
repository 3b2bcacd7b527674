package report

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestDigest(t *testing.T) {
	base := func() *Report {
		return &Report{Flake: ".", Engine: "host", Outputs: []Output{
			{Attr: "packages.x86_64-linux.a", OutPaths: []string{"/nix/store/aaa-a", "/nix/store/aaa-a-dev"}, Status: StatusBuilt},
			{Attr: "packages.x86_64-linux.b", OutPaths: []string{"/nix/store/bbb-b"}, Status: StatusCached},
			{Attr: "checks.x86_64-linux.c", Status: StatusFailed},
		}}
	}
	d := base().Digest()
	assert.True(t, strings.HasPrefix(d, DigestPrefix), d)
	assert.Len(t, d, len(DigestPrefix)+64)

	for _, tt := range []struct {
		name   string
		change func(*Report)
		same   bool
	}{
		{name: "unchanged", change: func(*Report) {}, same: true},
		{name: "outputs reordered", same: true, change: func(r *Report) {
			r.Outputs[0], r.Outputs[1] = r.Outputs[1], r.Outputs[0]
		}},
		{name: "out paths reordered", same: true, change: func(r *Report) {
			r.Outputs[0].OutPaths = []string{"/nix/store/aaa-a-dev", "/nix/store/aaa-a"}
		}},
		{name: "status and timing differ", same: true, change: func(r *Report) {
			r.Outputs[0].Status, r.Outputs[0].DurationMs, r.Engine = StatusCached, Ms(99*time.Millisecond), "dagger"
		}},
		{name: "one out path changed", change: func(r *Report) { r.Outputs[1].OutPaths[0] = "/nix/store/ccc-b" }},
		{name: "an output more", change: func(r *Report) {
			r.Outputs = append(r.Outputs, Output{Attr: "packages.x86_64-linux.d", OutPaths: []string{"/nix/store/ddd-d"}})
		}},
		{name: "an output less", change: func(r *Report) { r.Outputs = r.Outputs[1:] }},
		{name: "attribute renamed", change: func(r *Report) { r.Outputs[1].Attr = "packages.x86_64-linux.bb" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := base()
			tt.change(r)
			if tt.same {
				assert.Equal(t, d, r.Digest())
			} else {
				assert.NotEqual(t, d, r.Digest())
			}
		})
	}
}
