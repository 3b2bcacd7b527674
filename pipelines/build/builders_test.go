package build

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/internal/testsshd"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// inStore asks the builder's store (not the local one) whether it holds p.
func inStore(t *testing.T, storeRoot, p string) bool {
	t.Helper()
	var errb bytes.Buffer
	cmd := exec.Command("nix-store", "--store", "local?root="+storeRoot, "--check-validity", p)
	cmd.Stderr = &errb
	err := cmd.Run()
	if err != nil && !strings.Contains(errb.String(), "is not valid") {
		t.Fatalf("asking the builder's store about %s: %v: %s", p, err, errb.String())
	}
	return err == nil
}

func zero() *int { z := 0; return &z }

// buildRemote builds every output of eng's flake for x86_64-linux with
// remote builders.
func buildRemote(t *testing.T, eng engine.Engine, remote Remote, prog Progress) map[string]report.Output {
	t.Helper()
	rep, _, err := Run(t.Context(), Options{Engine: eng, Flake: eng.SourcePath(), Systems: []string{"x86_64-linux"}, Remote: remote, Progress: prog})
	require.NoError(t, err)
	return byAttr(rep)
}

// killOnStart is progress that kills srv's sshd when a build logs
// "started".
func killOnStart(srv *testsshd.Server) *recorder {
	var once sync.Once
	return &recorder{onEv: func(e Event) {
		if e.Kind == BuildLog && e.Line == "started" {
			once.Do(srv.Kill)
		}
	}}
}

// resume lets the builds waiting for release finish and starts srv's sshd
// again.
func resume(t *testing.T, srv *testsshd.Server, release string) {
	t.Helper()
	require.NoError(t, os.WriteFile(release, nil, 0o644))
	require.NoError(t, srv.Start())
}

// waitFor is a builder script's start: it logs "started" and waits until
// the file release exists.
func waitFor(release string) string {
	return "echo started; while [ ! -e " + release + " ]; do :; done; "
}

// TestRemoteBuildersOnly: with no local build slots every output is built on
// the remote builder (a second store directory behind sshd), the report
// names it, and a failing output fails with its log.
func TestRemoteBuildersOnly(t *testing.T) {
	srv := testsshd.Start(t)
	f := fixture.Packages(testlib.Nonce(), map[string]fixture.Drv{
		"shared": {Script: "echo building shared; echo shared > $out"},
		"a":      {Script: "echo a $dep_shared > $out", Deps: []string{"shared"}},
		"b":      {Script: "echo b $dep_shared > $out", Deps: []string{"shared"}},
		"bad":    {Script: "echo the compiler says no; exit 3"},
	}, "a", "b", "bad")
	_, eng := setup(t, f)
	machine, err := srv.Machine("x86_64-linux", 2, "")
	require.NoError(t, err)

	legacy, err := srv.MachineFor(srv.LegacyURI(), "x86_64-linux", 2, "")
	require.NoError(t, err)
	tests := []struct {
		name   string
		remote func(t *testing.T) Remote
		uri    string
	}{
		{"machines file", func(t *testing.T) Remote {
			file := filepath.Join(t.TempDir(), "machines")
			require.NoError(t, os.WriteFile(file, []byte("# the loopback builder\n"+machine+"\n"), 0o644))
			return Remote{Builders: "@" + file}
		}, srv.URI()},
		{"machines file named in nix.conf", func(t *testing.T) Remote {
			dir := t.TempDir()
			file := filepath.Join(dir, "machines")
			require.NoError(t, os.WriteFile(file, []byte(machine+"\n"), 0o644))
			conf := filepath.Join(dir, "nix.conf")
			require.NoError(t, os.WriteFile(conf, []byte("builders = @"+file+"\n"), 0o644))
			t.Setenv("NIX_USER_CONF_FILES", conf)
			return Remote{}
		}, srv.URI()},
		{"builders from NIX_CONFIG", func(t *testing.T) Remote {
			t.Setenv("NIX_CONFIG", os.Getenv("NIX_CONFIG")+"\nbuilders = "+machine)
			return Remote{}
		}, srv.URI()},
		{"ssh:// store (nix-store --serve)", func(t *testing.T) Remote {
			return Remote{Builders: legacy}
		}, srv.LegacyURI()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.Nonce = testlib.Nonce()
			_, eng = setup(t, f)
			remote := tt.remote(t)
			remote.LocalJobs = zero()
			remote.Env = map[string]string{"NIX_SSHOPTS": srv.SSHOpts()}
			got := buildRemote(t, eng, remote, nil)
			require.Len(t, got, 3)
			for _, name := range []string{"a", "b"} {
				o := got["packages.x86_64-linux."+name]
				require.Equal(t, report.StatusBuilt, o.Status, "%s: %s", name, o.Reason)
				assert.Equal(t, tt.uri, o.Builder, name)
				for _, p := range o.OutPaths {
					assert.True(t, inStore(t, srv.Store, p), "%s was not built in the builder's store", p)
				}
			}
			bad := got["packages.x86_64-linux.bad"]
			assert.Equal(t, report.StatusFailed, bad.Status)
			assert.Equal(t, tt.uri, bad.Builder)
			assert.Contains(t, bad.Reason, "bad.drv")
			assert.Contains(t, bad.Log, "the compiler says no")
		})
	}
}

// TestRemoteBuilderKilled: when sshd dies mid-build the affected outputs
// fail with a reason that says so, and a rerun completes.
func TestRemoteBuilderKilled(t *testing.T) {
	gate := t.TempDir()
	srv := testsshd.Start(t, gate)
	release := filepath.Join(gate, "release")
	_, eng := setup(t, fixture.Packages(testlib.Nonce(), map[string]fixture.Drv{
		"slow":  {Script: waitFor(release) + "echo slow > $out"},
		"after": {Script: "echo after $dep_slow > $out", Deps: []string{"slow"}},
	}, "slow", "after"))
	machine, err := srv.Machine("x86_64-linux", 1, "")
	require.NoError(t, err)
	remote := Remote{Builders: machine, LocalJobs: zero(), Env: map[string]string{"NIX_SSHOPTS": srv.SSHOpts()}}

	got := buildRemote(t, eng, remote, killOnStart(srv))
	require.Len(t, got, 2)
	for _, o := range got {
		t.Logf("%s: %s (%s)", o.Attr, o.Status, o.Reason)
		assert.Equal(t, report.StatusFailed, o.Status, o.Attr)
		assert.Contains(t, o.Reason, "lost remote builder "+srv.URI())
		assert.Contains(t, o.Reason, "unexpected end-of-file")
	}

	// While the builder is down, the outputs fail saying why.
	for _, o := range buildRemote(t, eng, remote, nil) {
		assert.Equal(t, report.StatusFailed, o.Status, o.Attr)
		assert.Contains(t, o.Reason, "cannot build on '"+srv.URI()+"'", o.Attr)
	}

	resume(t, srv, release)
	for _, o := range buildRemote(t, eng, remote, nil) {
		assert.Equal(t, report.StatusBuilt, o.Status, "%s: %s", o.Attr, o.Reason)
		assert.Equal(t, srv.URI(), o.Builder, o.Attr)
	}
}

// TestRemoteBuilderKilledOthersBuild: only the outputs that needed the
// builder fail when it goes away; what builds on this machine is built.
func TestRemoteBuilderKilledOthersBuild(t *testing.T) {
	gate := t.TempDir()
	srv := testsshd.Start(t, gate)
	release := filepath.Join(gate, "release")
	_, eng := setup(t, fixture.Packages(testlib.Nonce(), map[string]fixture.Drv{
		"heavy": {Script: waitFor(release) + "echo heavy > $out", Features: []string{"big-parallel"}},
		"app":   {Script: "echo app $dep_heavy > $out", Deps: []string{"heavy"}},
		"light": {Script: "echo light > $out"},
	}, "heavy", "app", "light"))
	machine, err := srv.Machine("x86_64-linux", 1, "big-parallel")
	require.NoError(t, err)
	fields := strings.Fields(machine)
	fields[6] = "big-parallel" // mandatory: the builder takes only heavy
	remote := Remote{Builders: strings.Join(fields, " "), Env: map[string]string{"NIX_SSHOPTS": srv.SSHOpts()}}

	got := buildRemote(t, eng, remote, killOnStart(srv))
	for _, name := range []string{"heavy", "app"} {
		o := got["packages.x86_64-linux."+name]
		assert.Equal(t, report.StatusFailed, o.Status, name)
		assert.Contains(t, o.Reason, "lost remote builder "+srv.URI(), name)
	}
	light := got["packages.x86_64-linux.light"]
	assert.Equal(t, report.StatusBuilt, light.Status, light.Reason)
	assert.Equal(t, BuilderLocal, light.Builder)

	resume(t, srv, release)
	got = buildRemote(t, eng, remote, nil)
	for _, o := range got {
		want := report.StatusBuilt
		if o.Attr == "packages.x86_64-linux.light" {
			want = report.StatusPresent // built by the first run
		}
		assert.Equal(t, want, o.Status, "%s: %s", o.Attr, o.Reason)
	}
	assert.Equal(t, srv.URI(), got["packages.x86_64-linux.heavy"].Builder)
	assert.Equal(t, BuilderLocal, got["packages.x86_64-linux.app"].Builder)
}

// TestNoteBuilder reads the machine from nix's build activities, as Nix
// 2.8 prints them for a remote build (the outer activity names the machine,
// the remote daemon's own activity has an empty one) and a local build.
func TestNoteBuilder(t *testing.T) {
	const remote = `@nix {"action":"start","fields":["/nix/store/bqlf1wqkgz5slbnjaahwdih9jcvw5f9h-a.drv","ssh-ng://root@127.0.0.1?remote-store=local?root=/tmp/r",1,1],"id":7,"level":3,"text":"building","type":105}`
	const inner = `@nix {"action":"start","fields":["/nix/store/bqlf1wqkgz5slbnjaahwdih9jcvw5f9h-a.drv","",1,1],"id":8,"level":3,"text":"building","type":105}`
	const local = `@nix {"action":"start","fields":["/nix/store/akm1yf4l2n8ipgl1drj5j6yqd59ikbrg-b.drv","",1,1],"id":9,"level":3,"text":"building","type":105}`
	tests := []struct {
		name  string
		lines []string
		want  map[string]string
	}{
		{"remote", []string{remote, inner}, map[string]string{"/nix/store/bqlf1wqkgz5slbnjaahwdih9jcvw5f9h-a.drv": "ssh-ng://root@127.0.0.1?remote-store=local?root=/tmp/r"}},
		{"local", []string{local}, map[string]string{"/nix/store/akm1yf4l2n8ipgl1drj5j6yqd59ikbrg-b.drv": BuilderLocal}},
		{"both", []string{local, remote, inner}, map[string]string{
			"/nix/store/akm1yf4l2n8ipgl1drj5j6yqd59ikbrg-b.drv": BuilderLocal,
			"/nix/store/bqlf1wqkgz5slbnjaahwdih9jcvw5f9h-a.drv": "ssh-ng://root@127.0.0.1?remote-store=local?root=/tmp/r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newEventParser(nil, func() bool { return false }, nil)
			for _, l := range tt.lines {
				p.Line(l)
			}
			assert.Equal(t, tt.want, p.Builders)
		})
	}
}

// TestRemoteBuilderByFeature: a builder whose mandatory feature is
// big-parallel (as upstream's torch requires) gets exactly the derivations
// that require it; the rest build on this machine.
func TestRemoteBuilderByFeature(t *testing.T) {
	srv := testsshd.Start(t)
	_, eng := setup(t, fixture.Packages(testlib.Nonce(), map[string]fixture.Drv{
		"heavy": {Script: "echo heavy > $out", Features: []string{"big-parallel"}},
		"light": {Script: "echo light > $out"},
		"app":   {Script: "echo app $dep_heavy > $out", Deps: []string{"heavy"}},
	}, "heavy", "light", "app"))
	host, err := srv.Machine("x86_64-linux", 2, "")
	require.NoError(t, err)
	// Fields: URI systems key jobs speed supported mandatory hostkey.
	fields := strings.Fields(host)
	fields[5], fields[6] = "big-parallel", "big-parallel"
	remote := Remote{Builders: strings.Join(fields, " "), Env: map[string]string{"NIX_SSHOPTS": srv.SSHOpts()}}
	got := buildRemote(t, eng, remote, nil)
	want := map[string]string{"heavy": srv.URI(), "light": BuilderLocal, "app": BuilderLocal}
	for name, builder := range want {
		o := got["packages.x86_64-linux."+name]
		require.Equal(t, report.StatusBuilt, o.Status, "%s: %s", name, o.Reason)
		assert.Equal(t, builder, o.Builder, name)
		for _, p := range o.OutPaths {
			assert.Equal(t, builder != BuilderLocal, inStore(t, srv.Store, p), "%s in the builder's store", name)
		}
	}
}

// TestCanBuildWithoutLocalSlots: with --local-jobs 0 only the builders
// count, and an output none of them takes is skipped saying so.
func TestCanBuildWithoutLocalSlots(t *testing.T) {
	m := &Machine{System: "x86_64-linux", Features: []string{"big-parallel", "kvm"}, NoLocal: true,
		Builders: ParseBuilders("ssh-ng://big x86_64-linux /key 8 1 big-parallel")}
	tests := []struct {
		name     string
		system   string
		features []string
		ok       bool
		reason   string
	}{
		{"builder takes it", "x86_64-linux", []string{"big-parallel"}, true, ""},
		{"no builder has the feature", "x86_64-linux", []string{"kvm"}, false, "no remote builder takes x86_64-linux with system features kvm, and --local-jobs 0"},
		{"no builder for the system", "aarch64-linux", nil, false, "no remote builder takes aarch64-linux, and --local-jobs 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, why := m.CanBuild(tt.system, tt.features)
			assert.Equal(t, tt.ok, ok)
			if tt.reason == "" {
				assert.Empty(t, why)
			} else {
				assert.Contains(t, why, tt.reason)
			}
		})
	}
}
