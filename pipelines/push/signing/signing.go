// Package signing loads, generates and describes the Nix signing key that
// `ci push` signs store paths with. A key is "name:base64(ed25519 secret)"
// exactly as `nix key generate-secret` writes it. The secret never leaves
// this package as text except through Key.Secret, for an engine's Secrets.
package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
)

// Environment variables that carry the key.
const (
	EnvKeyFile = "NIX_SIGNING_KEY_FILE"
	EnvKey     = "NIX_SIGNING_KEY"
)

// DefaultKeyName names the key generated on first use.
const DefaultKeyName = "ipex-flake-local-1"

// Key is a Nix secret signing key. Its String and GoString never show the
// secret, so it is safe in log lines and %v.
type Key struct {
	name   string
	secret ed25519.PrivateKey
	// Source says where the key came from ("--signing-key-file", "NIX_SIGNING_KEY", …).
	Source string
}

// Name is the key name (the part before the colon).
func (k *Key) Name() string { return k.name }

// Secret is the key in nix's text form, for engine.Cmd.Secrets only.
func (k *Key) Secret() string {
	return k.name + ":" + base64.StdEncoding.EncodeToString(k.secret)
}

// Public is the public key in nix's text form (`name:base64`), the value of
// trusted-public-keys.
func (k *Key) Public() string {
	pub := k.secret.Public().(ed25519.PublicKey)
	return k.name + ":" + base64.StdEncoding.EncodeToString(pub)
}

// Sign signs a narinfo fingerprint and returns the signature as a narinfo
// Sig value (name:base64), as `nix store sign` would.
func (k *Key) Sign(fingerprint string) string {
	return k.name + ":" + base64.StdEncoding.EncodeToString(ed25519.Sign(k.secret, []byte(fingerprint)))
}

// String implements fmt.Stringer without the secret.
func (k *Key) String() string { return "signing key " + k.name + " (" + k.Source + ")" }

// GoString implements fmt.GoStringer without the secret.
func (k *Key) GoString() string { return k.String() }

// Parse reads a secret key in nix's text form. Errors never quote the input.
func Parse(text, source string) (*Key, error) {
	text = strings.TrimSpace(text)
	name, b64, ok := strings.Cut(text, ":")
	if !ok || name == "" {
		return nil, clierr.Usagef("%s is not a Nix secret key (want NAME:BASE64, as `nix key generate-secret --key-name NAME` writes)", source)
	}
	if !validName(name) {
		return nil, clierr.Usagef("%s is not a Nix secret key: it must start with a key name such as cache.example.org-1 and a colon (want NAME:BASE64, as `nix key generate-secret --key-name NAME` writes)", source)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		hint := "make one with `nix key generate-secret --key-name " + name + "`"
		if len(raw) == ed25519.PublicKeySize {
			hint = "this is a public key; pass the secret key it was made from"
		}
		return nil, clierr.Usagef("%s is not a Nix secret key: the part after %q must be %d bytes of base64 (%s)", source, name+":", ed25519.PrivateKeySize, hint)
	}
	priv := ed25519.PrivateKey(raw)
	// libsodium keys are seed||public: check the halves agree.
	if derived := ed25519.NewKeyFromSeed(priv.Seed()); !derived.Equal(priv) {
		return nil, clierr.Usagef("%s is not a valid Nix secret key (its public half does not match)", source)
	}
	return &Key{name: name, secret: priv, Source: source}, nil
}

// validName reports whether name looks like a key name (and so is safe to
// quote in an error): short, printable, without spaces.
func validName(name string) bool {
	if len(name) > 100 {
		return false
	}
	for _, r := range name {
		if r <= ' ' || r > '~' || r == '"' || r == '\\' {
			return false
		}
	}
	return true
}

// Generate returns a fresh key named name.
func Generate(name string) (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Key{name: name, secret: priv, Source: "generated"}, nil
}

// ParsePublic checks a public key in nix's text form.
func ParsePublic(text string) error {
	if _, _, ok := decodePublic(text); !ok {
		return fmt.Errorf("%q is not a Nix public key (want NAME:BASE64 of %d bytes)", text, ed25519.PublicKeySize)
	}
	return nil
}

// decodePublic splits a public key in nix's text form into its name and
// key bytes; ok is false unless both are there and the key has the size
// of an ed25519 public key.
func decodePublic(text string) (name string, raw []byte, ok bool) {
	name, b64, found := strings.Cut(strings.TrimSpace(text), ":")
	raw, err := base64.StdEncoding.DecodeString(b64)
	return name, raw, found && name != "" && err == nil && len(raw) == ed25519.PublicKeySize
}

// ParsePublicKeys reads public keys in nix's text form, separated by
// white space as in nix's trusted-public-keys, and returns them one per
// element. source names where they came from. Errors are usage errors
// that name the bad key by its name only: a secret key given by mistake
// (NIX_STAGING_SIGNING_KEY instead of its public half) is never quoted.
func ParsePublicKeys(text, source string) ([]string, error) {
	var keys []string
	for _, k := range strings.Fields(text) {
		name, raw, ok := decodePublic(k)
		if ok {
			keys = append(keys, k)
			continue
		}
		what := "a key"
		if validName(name) && name != "" && strings.Contains(k, ":") {
			what = "key " + strconv.Quote(name)
		}
		hint := "as `nix key convert-secret-to-public` prints it"
		if len(raw) == ed25519.PrivateKeySize {
			hint = "this is a secret key: pass its public half, from `nix key convert-secret-to-public < SECRET_KEY_FILE`"
		}
		return nil, clierr.Usagef("%s: %s is not a Nix public key: want NAME:BASE64 of %d bytes (%s)", source, what, ed25519.PublicKeySize, hint)
	}
	return keys, nil
}

// DefaultKeyPath is where the key generated on first use is kept: under the
// user config directory, mode 0600.
func DefaultKeyPath() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = filepath.Join(os.TempDir(), "ipex-flake-config")
	}
	return filepath.Join(dir, "ipex-flake", "signing-key.sec")
}

// Source names the place a key is read from, in the order Resolve tries.
type Source struct {
	// File is --signing-key-file ("" = not given).
	File string
	// Getenv reads NIX_SIGNING_KEY_FILE and NIX_SIGNING_KEY.
	Getenv func(string) string
	// DefaultPath is the generated key's file (DefaultKeyPath() when "").
	DefaultPath string
}

// Resolve returns the key from --signing-key-file, NIX_SIGNING_KEY_FILE or
// NIX_SIGNING_KEY, in that order; with none of them it loads the default key,
// generating it on first use. generated reports that a new key was written.
func Resolve(s Source) (key *Key, generated bool, err error) {
	getenv := s.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if s.File != "" {
		k, err := LoadFile(s.File, "--signing-key-file "+s.File)
		return k, false, err
	}
	if f := getenv(EnvKeyFile); f != "" {
		k, err := LoadFile(f, EnvKeyFile+"="+f)
		return k, false, err
	}
	if v := getenv(EnvKey); v != "" {
		k, err := Parse(v, EnvKey)
		return k, false, err
	}
	path := s.DefaultPath
	if path == "" {
		path = DefaultKeyPath()
	}
	return LoadOrGenerate(path)
}

// LoadFile reads a secret key file.
func LoadFile(path, source string) (*Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, clierr.Usagef("%s: cannot read the signing key (%v): point it at a file made by `nix key generate-secret --key-name NAME`", source, errors.Unwrap(err))
	}
	return Parse(string(data), source)
}

// LoadOrGenerate loads the key at path, or generates one named
// DefaultKeyName and writes it there with mode 0600 (directory 0700).
func LoadOrGenerate(path string) (*Key, bool, error) {
	if _, err := os.Stat(path); err == nil {
		k, err := LoadFile(path, path)
		if err != nil {
			return nil, false, clierr.Usagef("%v; or move %s away to generate a new local key", err, path)
		}
		return k, false, nil
	}
	k, err := Generate(DefaultKeyName)
	if err != nil {
		return nil, false, err
	}
	k.Source = path
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) { // another process won the race
		k, err := LoadFile(path, path)
		return k, false, err
	}
	if err != nil {
		return nil, false, err
	}
	if _, err := f.WriteString(k.Secret()); err != nil {
		f.Close()
		os.Remove(path)
		return nil, false, err
	}
	if err := f.Close(); err != nil {
		return nil, false, err
	}
	return k, true, nil
}

// NixConfLines are the nix.conf lines that make a machine trust a cache
// signed by pub.
func NixConfLines(cacheURI, pub string) string {
	return fmt.Sprintf("extra-substituters = %s\nextra-trusted-public-keys = %s\n", cacheURI, pub)
}
