package cmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/fakedagger"
	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// daggerSession is the nix 2.8 session recorded by the build pipeline's
// tests (pipelines/build, TestRecordDaggerSession) for this flake.
const daggerSession = "../../pipelines/build/testdata/dagger-nix"

type sessionOutput struct {
	Attr    string            `json:"attr"`
	DrvPath string            `json:"drvPath"`
	Outputs map[string]string `json:"outputs"`
}

// TestBuildOnDaggerEngine runs `ci build --engine dagger` against the fake
// Dagger engine replaying a recorded nix session: the report, the exit code
// and the containers the commands ran in.
func TestBuildOnDaggerEngine(t *testing.T) {
	rec, err := fakedagger.LoadRecording(daggerSession)
	require.NoError(t, err)
	nonce, err := os.ReadFile(filepath.Join(daggerSession, "nonce"))
	require.NoError(t, err)
	var discovered []sessionOutput
	require.NoError(t, json.Unmarshal([]byte(rec["discover"].Stdout), &discovered))
	byAttr := map[string]sessionOutput{}
	for _, o := range discovered {
		byAttr[o.Attr] = o
	}
	warm := byAttr["packages.x86_64-linux.warm"]
	require.NotEmpty(t, warm.Outputs["out"])

	const image = "docker.io/nixos/nix:2.8.0"
	tests := []struct {
		name      string
		attrs     []string
		wantCode  int
		want      map[string]string
		wantErr   string
		wantBuild bool
	}{
		{
			name:      "every output",
			wantCode:  clierr.ExitFailed,
			want:      fixture.EveryStatusWant(),
			wantErr:   "3 of 6 outputs failed",
			wantBuild: true,
		},
		{
			name:     "only a cached output",
			attrs:    []string{"packages.*.warm"},
			wantCode: clierr.ExitOK,
			want:     map[string]string{"packages.x86_64-linux.warm": report.StatusCached},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := fakedagger.New(t)
			fake.Setenv(t)
			keys := &fakedagger.SessionKeys{}
			fake.ExecResult = func(exec *fakedagger.Obj) fakedagger.ExecResult {
				args := exec.Strings("args")
				key := keys.Key(args)
				r, ok := rec[key]
				if !ok {
					t.Errorf("the pipeline sent a command that was not recorded: %q", args)
					return fakedagger.ExecResult{ExitCode: 127, Stderr: "not recorded\n"}
				}
				if key == "discover" && len(tt.attrs) > 0 {
					// What nix answers for --attr: only the selected outputs.
					var all, sel []map[string]any
					require.NoError(t, json.Unmarshal([]byte(r.Stdout), &all))
					for _, o := range all {
						if _, want := tt.want[o["attr"].(string)]; want {
							sel = append(sel, o)
						}
					}
					out, _ := json.Marshal(sel)
					r.Stdout = string(out)
				}
				return r.ExecResult
			}

			src := t.TempDir()
			require.NoError(t, fixture.Write(src, fixture.EveryStatus(strings.TrimSpace(string(nonce)))))
			cacheDir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(cacheDir, cache.HashPart(warm.Outputs["out"])+".narinfo"),
				[]byte("StorePath: "+warm.Outputs["out"]+"\n"), 0o644))
			out := t.TempDir()
			rep, junit := filepath.Join(out, "r.json"), filepath.Join(out, "j.xml")

			io, _, errb := testIO(map[string]string{
				"CI": "true", "DAGGER_SESSION_PORT": fake.Port, "DAGGER_SESSION_TOKEN": fakedagger.Token,
			})
			args := []string{"build", "--engine", "dagger", "--image", image, "--flake", src, "--systems", "x86_64-linux",
				"--cache", "file://" + cacheDir, "--report", rep, "--junit", junit, "--jobs", "2"}
			for _, a := range tt.attrs {
				args = append(args, "--attr", a)
			}
			code := Run(t.Context(), io, args)
			assert.Equal(t, tt.wantCode, code, errb.String())
			if tt.wantErr != "" {
				assert.Contains(t, errb.String(), tt.wantErr)
			}
			assert.Contains(t, errb.String(), "on the dagger engine")

			r, err := report.Read(rep)
			require.NoError(t, err)
			assert.Equal(t, engine.KindDagger, r.Engine)
			assert.Equal(t, src, r.Flake, "the report names the flake as given, not its mount point")
			got := map[string]string{}
			for _, o := range r.Outputs {
				got[o.Attr] = o.Status
			}
			assert.Equal(t, tt.want, got)

			suites := readJUnit(t, junit)
			assert.Equal(t, len(tt.want), suites[0].Tests)
			assertJUnitTimes(t, r, suites[0])

			// Every command ran in the image, with /nix on the cache volume
			// and the flake at /src.
			execs := map[string]*fakedagger.Obj{}
			keys = &fakedagger.SessionKeys{}
			for _, x := range fake.Execs() {
				execs[keys.Key(x.Strings("args"))] = x
				c := fake.Container(x)
				assert.Equal(t, image, c.Pulled, x.String())
				require.Len(t, c.Caches, 1)
				assert.Equal(t, "/nix", c.Caches[0].Path)
				assert.Equal(t, []fakedagger.HostDir{{Path: "/src", Host: src, Exclude: []string{".git", "result*"}}}, c.Dirs)
			}

			disc := execs["discover"]
			require.NotNil(t, disc)
			dargs := disc.Strings("args")
			require.Contains(t, dargs, "--expr")
			expr := dargs[len(dargs)-1]
			assert.Contains(t, expr, `\"flake\":\"/src\"`, "the container evaluates the mounted flake")
			assert.NotContains(t, expr, src, "the host path means nothing in the container")
			if len(tt.attrs) > 0 {
				assert.Contains(t, expr, `\"patterns\":[\"packages`, "--attr reaches the evaluation")
				assert.Contains(t, expr, `warm\"]`)
			} else {
				assert.Contains(t, expr, `\"patterns\":null`)
			}

			b, built := execs["build"]
			assert.Equal(t, tt.wantBuild, built, "cached outputs are not built")
			if built {
				bargs := b.Strings("args")
				assert.Contains(t, bargs, "--keep-going")
				var drvs []string
				for _, a := range bargs {
					if strings.HasSuffix(a, ".drv") {
						drvs = append(drvs, a)
					}
				}
				want := []string{
					byAttr["packages.x86_64-linux.after-bad"].DrvPath,
					byAttr["packages.x86_64-linux.bad"].DrvPath,
					byAttr["packages.x86_64-linux.ok"].DrvPath,
				}
				slices.Sort(want)
				assert.Equal(t, want, drvs)
			}
		})
	}
}
