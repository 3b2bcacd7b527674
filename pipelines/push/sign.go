package push

import (
	"context"
	"io"

	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/push/signing"
)

// secretEnv is the variable that carries the key into the signing command.
const secretEnv = "IPEX_NIX_SIGNING_KEY"

// signScript writes the key from the environment to a 0600 file in a fresh
// temporary directory outside the Nix store, removes the variable before
// nix starts, signs, and deletes the file whatever happens. printf is a
// shell builtin, so the key is on no command line.
const signScript = `set -eu
umask 077
d=$(mktemp -d "${TMPDIR:-/tmp}/ipex-sign.XXXXXX")
trap 'rm -rf "$d"' EXIT
trap 'exit 130' INT TERM
printf '%s' "$` + secretEnv + `" > "$d/key"
unset ` + secretEnv + `
nix --extra-experimental-features 'nix-command flakes' store sign --key-file "$d/key" "$@"
`

// Signer adds signatures to store paths in the engine's local store, before
// they are uploaded.
type Signer interface {
	Sign(ctx context.Context, paths []string) error
}

// NixSigner signs with `nix store sign`; the key reaches the engine only as
// a secret (Cmd.Secrets: a *dagger.Secret inside containers).
type NixSigner struct {
	Engine engine.Engine
	Key    *signing.Key
	Log    io.Writer
}

var _ Signer = (*NixSigner)(nil)

// SignCmd is the command that signs paths with the key.
func SignCmd(key *signing.Key, paths []string) engine.Cmd {
	args := append([]string{"sh", "-c", signScript, "sign"}, paths...)
	return engine.Cmd{Args: args, Secrets: map[string]string{secretEnv: key.Secret()}}
}

// Sign implements Signer.
func (s *NixSigner) Sign(ctx context.Context, paths []string) error {
	for _, c := range chunks(paths) {
		if err := run(ctx, s.Engine, s.Log, SignCmd(s.Key, c), "nix store sign"); err != nil {
			return err
		}
	}
	return nil
}
