package push

import (
	"context"
	"io"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

// Verifier checks, after a push, that the cache serves every path signed by
// a trusted key and complete.
type Verifier interface {
	Verify(ctx context.Context, paths []string, publicKey string) error
}

// NixVerifier runs `nix store verify --store URI` with only publicKey
// trusted, asking the server itself (NoNarinfoCache). Contents are not
// re-downloaded by nix (--no-contents): for file:// and http(s):// caches
// the push reads every NAR it wrote back and checks its size and hash.
type NixVerifier struct {
	Engine engine.Engine
	URI    string
	Log    io.Writer
}

var _ Verifier = (*NixVerifier)(nil)

// VerifyArgs is the nix command line that checks paths in uri against publicKey.
func VerifyArgs(uri, publicKey string, paths []string) []string {
	args := nixFresh("store", "verify", "--store", uri, "--no-contents", "--sigs-needed", "1",
		"--option", "trusted-public-keys", publicKey)
	return append(args, paths...)
}

// Verify implements Verifier.
func (v *NixVerifier) Verify(ctx context.Context, paths []string, publicKey string) error {
	for _, c := range chunks(paths) {
		if err := run(ctx, v.Engine, v.Log, engine.Cmd{Args: VerifyArgs(v.URI, publicKey, c)},
			"nix store verify --store "+v.URI); err != nil {
			return clierr.Failedf("verification of the pushed paths in %s against %s failed: %v", v.URI, publicKey, err)
		}
	}
	return nil
}

// FakeVerifier records verifications, for tests.
type FakeVerifier struct {
	Verified [][]string
	Keys     []string
	Err      error
}

var _ Verifier = (*FakeVerifier)(nil)

// Verify implements Verifier.
func (f *FakeVerifier) Verify(_ context.Context, paths []string, publicKey string) error {
	f.Verified = append(f.Verified, append([]string(nil), paths...))
	f.Keys = append(f.Keys, publicKey)
	return f.Err
}
