package nixcli

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    Version
		wantErr bool
	}{
		{"nix (Nix) 2.8.0\n", Version{2, 8, 0}, false},
		{"nix (Nix) 2.24.10", Version{2, 24, 10}, false},
		{"nix (Determinate Nix 3.6.2) 2.29.0", Version{3, 6, 2}, false},
		{"garbage", Version{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, err := ParseVersion(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, v)
		})
	}
}

func TestDrvInstallable(t *testing.T) {
	assert.Equal(t, "/nix/store/x.drv", Version{2, 8, 0}.DrvInstallable("/nix/store/x.drv"))
	assert.Equal(t, "/nix/store/x.drv^*", Version{2, 18, 1}.DrvInstallable("/nix/store/x.drv"))
}

func TestParsePathInfo(t *testing.T) {
	old := `[{"path":"/nix/store/b-x","narHash":"sha256:1","narSize":10,"references":[],"signatures":["k:s"],"valid":true},
	         {"path":"/nix/store/a-y","valid":false}]`
	nu := `{"/nix/store/b-x":{"narHash":"sha256:1","narSize":10,"references":[],"signatures":["k:s"]},"/nix/store/a-y":null}`
	for name, in := range map[string]string{"2.8": old, "2.19": nu} {
		t.Run(name, func(t *testing.T) {
			got, err := ParsePathInfo([]byte(in))
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, "/nix/store/b-x", got[0].Path)
			assert.Equal(t, int64(10), got[0].NarSize)
			assert.Equal(t, []string{"k:s"}, got[0].Signatures)
		})
	}
	_, err := ParsePathInfo([]byte("error: x"))
	require.Error(t, err)
}
