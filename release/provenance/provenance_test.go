package provenance

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/pipelines/cache"
)

// emptyHex is the SHA-256 of no bytes; nix prints it in the other forms
// below (nix hash file --type sha256 --base32 / --sri).
const emptyHex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestSHA256Hex(t *testing.T) {
	tests := []struct {
		name, in, want, wantErr string
	}{
		{"nix base32 (narinfo, path-info before 2.19)", "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73", emptyHex, ""},
		{"SRI (path-info from 2.19, flake.lock)", "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", emptyHex, ""},
		{"hex", "sha256:" + emptyHex, emptyHex, ""},
		{"bad base32 letter", "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c7e", "", "invalid character"},
		{"sha512", "sha512-abc", "", "not a SHA-256"},
		{"short", "sha256:abc", "", "length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SHA256Hex(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	raw, _ := hex.DecodeString(emptyHex)
	assert.Equal(t, "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73", cache.Nix32(raw))
}

type testSigner struct {
	name string
	priv ed25519.PrivateKey
}

func (s testSigner) Name() string           { return s.name }
func (s testSigner) Sign(msg []byte) []byte { return ed25519.Sign(s.priv, msg) }
func (s testSigner) Public() string {
	return s.name + ":" + base64.StdEncoding.EncodeToString(s.priv.Public().(ed25519.PublicKey))
}

func newSigner(t *testing.T, name string) testSigner {
	_, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	return testSigner{name, priv}
}

func testInput() Input {
	return Input{Flake: ".", Rev: "abc123", Channel: "beta", Version: "v1.0.0-beta.1", Engine: "host",
		Outputs: []Output{
			{Attr: "packages.x86_64-linux.b", OutPaths: []string{"/nix/store/bbbb-b"}},
			{Attr: "packages.x86_64-linux.a", DrvPath: "/nix/store/aaaa-a.drv", OutPaths: []string{"/nix/store/aaaa-a", "/nix/store/aaaa-a-doc"}, Builder: "ssh://builder"},
		},
		NarHashes: map[string]string{
			"/nix/store/aaaa-a":     "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73",
			"/nix/store/aaaa-a-doc": "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
			"/nix/store/bbbb-b":     "sha256:" + emptyHex,
		},
		Lock: []byte(`{"nodes":{"nixos":{"locked":{"type":"github","owner":"MordragT","repo":"nixos","rev":"0123abc","narHash":"sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}},
			"root":{"inputs":{"nixos":"nixos"}}},"root":"root","version":7}`),
		Gates:     []Gate{{Stage: "unit", State: "passed", Rev: "abc123"}, {Stage: "integration@intel-gpu-arc-a", State: "passed", Rev: "abc123"}},
		StartedOn: time.Unix(100, 0), FinishedOn: time.Unix(200, 0),
	}
}

func TestBuild(t *testing.T) {
	st, missing, err := Build(testInput())
	require.NoError(t, err)
	assert.Empty(t, missing)
	assert.Equal(t, map[string]string{"/nix/store/aaaa-a": emptyHex, "/nix/store/aaaa-a-doc": emptyHex, "/nix/store/bbbb-b": emptyHex}, st.Subjects())
	assert.Equal(t, "packages.x86_64-linux.a", st.Predicate.BuildDefinition.InternalParameters.Outputs[0].Attr, "outputs sorted")
	deps := st.Predicate.BuildDefinition.ResolvedDependencies
	require.Len(t, deps, 2)
	assert.Equal(t, "github:MordragT/nixos/0123abc", deps[1].URI)
	assert.Equal(t, map[string]string{"sha256": emptyHex, "gitCommit": "0123abc"}, deps[1].Digest)
	assert.Equal(t, "integration@intel-gpu-arc-a", st.Predicate.BuildDefinition.InternalParameters.Gates[0].Stage)

	// Field names as the formats spell them.
	data, err := json.Marshal(st)
	require.NoError(t, err)
	var generic map[string]any
	require.NoError(t, json.Unmarshal(data, &generic))
	pred := generic["predicate"].(map[string]any)
	bd := pred["buildDefinition"].(map[string]any)
	for _, k := range []string{"buildType", "externalParameters", "internalParameters", "resolvedDependencies"} {
		assert.Contains(t, bd, k)
	}
	rd := pred["runDetails"].(map[string]any)
	assert.Contains(t, rd["builder"], "id")
	for _, k := range []string{"invocationId", "startedOn", "finishedOn"} {
		assert.Contains(t, rd["metadata"], k)
	}
	assert.Equal(t, "https://in-toto.io/Statement/v1", generic["_type"])

	in := testInput()
	delete(in.NarHashes, "/nix/store/bbbb-b")
	st, missing, err = Build(in)
	require.NoError(t, err)
	assert.Equal(t, []string{"/nix/store/bbbb-b"}, missing)
	assert.NotContains(t, st.Subjects(), "/nix/store/bbbb-b")
	in.Lock = []byte("{")
	_, _, err = Build(in)
	require.ErrorContains(t, err, "flake.lock")
}

func TestEnvelope(t *testing.T) {
	st, _, err := Build(testInput())
	require.NoError(t, err)
	s := newSigner(t, "cache-1")
	env, err := Sign(st, s)
	require.NoError(t, err)
	parsed, err := ParseEnvelope(env.Marshal())
	require.NoError(t, err)
	got, err := parsed.Verify(s.Public())
	require.NoError(t, err)
	assert.Equal(t, st.Subjects(), got.Subjects())

	other := newSigner(t, "cache-1")
	_, err = parsed.Verify(other.Public())
	require.ErrorIs(t, err, ErrBadSignature)
	renamed := newSigner(t, "cache-2")
	_, err = parsed.Verify(renamed.Public())
	require.ErrorContains(t, err, "signed by cache-1")

	// The signature covers the payload type too (PAE).
	e := *parsed
	e.PayloadType = "application/json"
	_, err = e.Verify(s.Public())
	require.Error(t, err)
}
