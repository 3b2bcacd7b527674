package push

import (
	"bytes"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/testnginx"
	"github.com/ipex-flake/ipex-flake/pipelines/push/signing"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
)

// passedStore is a results store where unit passed for rev.
func passedStore(t *testing.T, rev string) results.Store {
	t.Helper()
	s := &results.FileStore{Path: filepath.Join(t.TempDir(), "results.json")}
	require.NoError(t, s.Record(t.Context(), results.Result{Stage: "unit", Rev: rev, State: results.StatePassed}))
	return s
}

// pushTo pushes b to uri with key; it returns stdout, stderr and the error.
func pushTo(t *testing.T, b *built, uri string, key *signing.Key) (string, string, []Summary, error) {
	t.Helper()
	return pushWith(t, b, uri, key, nil)
}

// pushWith is pushTo with the options changed by edit.
func pushWith(t *testing.T, b *built, uri string, key *signing.Key, edit func(*Options)) (string, string, []Summary, error) {
	t.Helper()
	var out, log bytes.Buffer
	targets, err := Targets(TargetConfig{Cache: uri, Engine: b.Engine, Log: &log})
	require.NoError(t, err)
	o := Options{
		Engine: b.Engine, Report: b.Report, Rev: b.Report.Rev, Results: passedStore(t, b.Report.Rev),
		Signer: &NixSigner{Engine: b.Engine, Key: key, Log: &log}, PublicKey: key.Public(), Key: key,
		Targets: targets, Out: &out, Log: &log,
	}
	if edit != nil {
		edit(&o)
	}
	sums, err := Run(t.Context(), o)
	return out.String(), log.String(), sums, err
}

// substitute copies paths from cache into an empty chroot store, trusting pub.
func substitute(t *testing.T, cacheURI, pub string, paths []string) (string, error) {
	t.Helper()
	store := filepath.Join(t.TempDir(), "store")
	args := append(append([]string{"copy", "--from", cacheURI, "--to", store, "--option", "trusted-public-keys", pub}, NoNarinfoCache...), paths...)
	return nixRun(t, args...)
}

func TestPushRealCaches(t *testing.T) {
	for _, tt := range realCaches {
		t.Run(tt.name, func(t *testing.T) {
			b := buildFixture(t, 2, 200)
			uri, dir := tt.cache(t)
			key := testKey(t)

			out, log, sums, err := pushTo(t, b, uri, key)
			require.NoError(t, err, log)
			require.Len(t, sums, 1)
			assert.Equal(t, 3, sums[0].Closure)
			assert.Equal(t, 3, sums[0].Pushed)
			assert.Contains(t, out, "pushed 3 paths to "+uri)
			assert.Len(t, narinfos(t, dir), 3)
			requireNARsPresent(t, dir)

			// A rerun uploads nothing and says so.
			out, log, sums, err = pushTo(t, b, uri, key)
			require.NoError(t, err, log)
			assert.Equal(t, 0, sums[0].Pushed)
			assert.Contains(t, out, "nothing to push: 3 paths already in "+uri)
			assert.NotContains(t, log, "copying path")

			// Substitution into an empty store trusts only our key.
			msg, err := substitute(t, uri, key.Public(), b.Paths)
			require.NoError(t, err, msg)

			// A wrong public key fails verification and substitution.
			wrong := testKey(t)
			v := &NixVerifier{Engine: b.Engine, URI: uri}
			err = v.Verify(t.Context(), b.Paths, wrong.Public())
			require.Error(t, err)
			assert.Equal(t, clierr.ExitFailed, clierr.Code(err))
			require.NoError(t, v.Verify(t.Context(), b.Paths, key.Public()))
			_, err = substitute(t, uri, wrong.Public(), b.Paths)
			require.Error(t, err, "substitution must refuse paths signed by an untrusted key")
		})
	}
}

func TestPushUnreachableCache(t *testing.T) {
	b := buildFixture(t, 1, 10)
	srv := httptest.NewServer(http.NotFoundHandler())
	uri := srv.URL
	srv.Close() // nothing listens there any more
	_, _, _, err := pushTo(t, b, uri, testKey(t))
	require.Error(t, err)
	assert.Equal(t, clierr.ExitFailed, clierr.Code(err))
	assert.Contains(t, err.Error(), "cannot read cache "+uri)
}

// flakyProxy forwards to target but answers 503 to the first fails
// requests of every method.
func flakyProxy(t *testing.T, target string, fails int) (*httptest.Server, func() map[string]int) {
	u, err := url.Parse(target)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(u)
	var mu sync.Mutex
	seen := map[string]int{}
	served503 := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Method]++
		fail := seen[r.Method] <= fails
		if fail {
			served503[r.Method]++
		}
		mu.Unlock()
		if fail {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(served503)
	}
}

func TestPushRetriesTransient5xx(t *testing.T) {
	b := buildFixture(t, 2, 50)
	ng := testnginx.New(t)
	proxy, served := flakyProxy(t, ng.URL(), 2)
	key := testKey(t)
	_, log, sums, err := pushTo(t, b, proxy.URL, key)
	require.NoError(t, err, log)
	assert.Equal(t, 3, sums[0].Pushed)
	got := served()
	assert.Equal(t, 2, got[http.MethodHead], "narinfo lookups were answered 503 and retried")
	assert.Equal(t, 2, got[http.MethodPut], "uploads were answered 503 and retried")
	assert.Equal(t, 2, got[http.MethodGet], "verification reads were answered 503 and retried")
	requireNARsPresent(t, ng.Root)
	msg, err := substitute(t, ng.URL(), key.Public(), b.Paths)
	require.NoError(t, err, msg)
}

func TestPushServerKilledMidway(t *testing.T) {
	// Few download attempts so the failure after the kill comes quickly.
	t.Setenv("NIX_CONFIG", os.Getenv("NIX_CONFIG")+"\ndownload-attempts = 2")
	b := buildFixture(t, 4, 3000)
	ng := testnginx.New(t)
	u, err := url.Parse(ng.URL())
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(u)
	var killed atomic.Bool
	var once sync.Once
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rp.ServeHTTP(w, r)
		// Once the first NAR is stored, the server dies.
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/nar/") {
			once.Do(func() { ng.Stop(); killed.Store(true) })
		}
	}))
	t.Cleanup(proxy.Close)
	key := testKey(t)

	_, log, _, err := pushTo(t, b, proxy.URL, key)
	require.True(t, killed.Load(), "the server was never killed: %s", log)
	require.Error(t, err, "a push to a dead server must fail")
	assert.Equal(t, clierr.ExitFailed, clierr.Code(err))
	assert.Less(t, len(narinfos(t, ng.Root)), 5, "the push cannot have finished")
	requireNARsPresent(t, ng.Root)

	require.NoError(t, ng.Restart())
	out, log, sums, err := pushTo(t, b, proxy.URL, key)
	require.NoError(t, err, log)
	assert.Greater(t, sums[0].Pushed, 0)
	assert.Contains(t, out, "pushed ")
	assert.Len(t, narinfos(t, ng.Root), 5)
	requireNARsPresent(t, ng.Root)
	msg, err := substitute(t, ng.URL(), key.Public(), b.Paths)
	require.NoError(t, err, msg)
}

// TestPushWrongPublicKeyFails pushes with one key while the push is told to
// verify against another: the paths are uploaded, verification against the
// cache fails, and so does the push.
func TestPushWrongPublicKeyFails(t *testing.T) {
	b := buildFixture(t, 1, 10)
	dir := filepath.Join(t.TempDir(), "cache")
	uri := "file://" + dir
	key, wrong := testKey(t), testKey(t)
	var log bytes.Buffer
	targets, err := Targets(TargetConfig{Cache: uri, Engine: b.Engine, Log: &log})
	require.NoError(t, err)
	_, err = Run(t.Context(), Options{
		Engine: b.Engine, Report: b.Report, Force: true,
		Signer: &NixSigner{Engine: b.Engine, Key: key, Log: &log}, PublicKey: wrong.Public(),
		Targets: targets, Out: &log, Log: &log,
	})
	require.Error(t, err, log.String())
	assert.Equal(t, clierr.ExitFailed, clierr.Code(err))
	assert.ErrorContains(t, err, "verification of the pushed paths in "+uri+" against "+wrong.Public()+" failed")
	assert.Len(t, narinfos(t, dir), 2, "the upload itself happened")
}

// TestPushKilledMidway SIGKILLs `nix copy` while it uploads to a file://
// cache: no narinfo names a missing NAR, and the next push finishes.
func TestPushKilledMidway(t *testing.T) {
	b := buildFixture(t, 6, 20000) // ~2 MB per path: xz takes a while
	dir := filepath.Join(t.TempDir(), "cache")
	uri := "file://" + dir
	key := testKey(t)
	targets, err := Targets(TargetConfig{Cache: uri, Engine: b.Engine})
	require.NoError(t, err)
	var killed atomic.Bool
	// The second "copying path" line means nix is in the middle of the
	// upload: kill every process whose command line names the cache.
	kill := &lineHook{match: "copying path", n: 2, do: func() {
		for _, pid := range pidsWithArg(uri) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			killed.Store(true)
		}
	}}
	targets[0].Uploader.(*NixCopy).Log = kill
	_, err = Run(t.Context(), Options{
		Engine: b.Engine, Report: b.Report, Force: true,
		Signer: &NixSigner{Engine: b.Engine, Key: key}, PublicKey: key.Public(),
		Targets: targets,
	})
	require.True(t, killed.Load(), "nix copy was never killed")
	require.Error(t, err, "a killed push must fail")
	assert.Equal(t, clierr.ExitFailed, clierr.Code(err))
	assert.Less(t, len(narinfos(t, dir)), 7, "the push cannot have finished")
	requireNARsPresent(t, dir)

	out, log, sums, err := pushTo(t, b, uri, key)
	require.NoError(t, err, log)
	assert.Greater(t, sums[0].Pushed, 0)
	assert.Contains(t, out, "pushed ")
	assert.Len(t, narinfos(t, dir), 7)
	requireNARsPresent(t, dir)
	msg, err := substitute(t, uri, key.Public(), b.Paths)
	require.NoError(t, err, msg)
}

// lineHook calls do once, when the n-th line containing match is written.
type lineHook struct {
	match string
	n     int
	do    func()
	mu    sync.Mutex
	seen  int
	buf   []byte
}

func (h *lineHook) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf = append(h.buf, p...)
	for {
		line, rest, ok := bytes.Cut(h.buf, []byte("\n"))
		if !ok {
			return len(p), nil
		}
		h.buf = rest
		if bytes.Contains(line, []byte(h.match)) {
			if h.seen++; h.seen == h.n {
				h.do()
			}
		}
	}
}

// pidsWithArg returns the processes (other than this one) with arg on
// their command line.
func pidsWithArg(arg string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		for _, a := range strings.Split(string(cmd), "\x00") {
			if a == arg {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
