package push

import (
	"context"
	"io"

	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/push/signing"
)

// secretEnv is the variable that carries the key into the signing command.
const secretEnv = "IPEX_NIX_SIGNING_KEY"

// signScript pipes the key from the environment into `nix store sign
// --key-file /dev/stdin`: the key is on no command line (printf is a shell
// builtin), in no file (not even a temporary one a kill could leave
// behind), and not in nix's environment (unset before nix starts).
const signScript = `set -eu
printf '%s' "$` + secretEnv + `" | (unset ` + secretEnv + `; exec nix --extra-experimental-features 'nix-command flakes' store sign --key-file /dev/stdin "$@")
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
