package testsshd

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServer: the generated key logs in, the session finds nix on PATH,
// and Kill takes the server and its sessions down; Start brings it back.
func TestServer(t *testing.T) {
	srv := Start(t)
	known := filepath.Join(t.TempDir(), "known_hosts")
	host, err := os.ReadFile(filepath.Join(srv.Dir, "host_key.pub"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(known, []byte("[127.0.0.1]:"+strconv.Itoa(srv.Port)+" "+string(host)), 0o600))
	ssh := func(cmd string) (string, error) {
		out, err := exec.Command("ssh", "-p", strconv.Itoa(srv.Port), "-i", filepath.Join(srv.Dir, "client_key"),
			"-o", "UserKnownHostsFile="+known, "-o", "BatchMode=yes", "root@127.0.0.1", cmd).CombinedOutput()
		return string(out), err
	}
	out, err := ssh("command -v nix-daemon")
	require.NoError(t, err, out)
	assert.Equal(t, "nix-daemon", filepath.Base(strings.TrimSpace(out)))

	machine, err := srv.Machine("x86_64-linux", 2, "big-parallel")
	require.NoError(t, err)
	f := strings.Fields(machine)
	require.Len(t, f, 8)
	assert.Equal(t, srv.URI(), f[0])
	assert.Equal(t, "big-parallel", f[5])

	srv.Kill()
	_, err = net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Port)))
	assert.Error(t, err, "sshd still listens after Kill")
	require.NoError(t, srv.Start())
	out, err = ssh("echo back")
	require.NoError(t, err, out)
	assert.Equal(t, "back", strings.TrimSpace(out))
}
