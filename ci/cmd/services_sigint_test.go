package cmd

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

// TestTestSIGINTStopsServices interrupts a real `ci test --stage
// integration` while its suite runs against the ollama-ipex and
// comfyui-ipex it started from the build: the command exits 1 and no
// process of either service is left.
func TestTestSIGINTStopsServices(t *testing.T) {
	testlib.OfflineNix(t)
	testlib.CheckPath(t, "go")
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "ci")
	for target, src := range map[string]string{bin: "..", filepath.Join(tmp, "fakeollama"): "../../tests/fakes/cmd/fakeollama",
		filepath.Join(tmp, "fakecomfyui"): "../../tests/fakes/cmd/fakecomfyui"} {
		out, err := exec.CommandContext(t.Context(), "go", "build", "-o", target, src).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	running, hang := filepath.Join(tmp, "running"), filepath.Join(tmp, "hang")
	require.NoError(t, syscall.Mkfifo(running, 0o600))
	require.NoError(t, syscall.Mkfifo(hang, 0o600))

	wrapper := func(name, body string) string {
		return fmt.Sprintf("/bin/mkdir -p $out/bin\nprintf '%%s\\n' '#!/bin/sh' '%s' > $out/bin/%s\n/bin/chmod 0555 $out/bin/%s\n", body, name, name)
	}
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, fixture.Flake{Nonce: testlib.Nonce(),
		Drvs: map[string]fixture.Drv{
			"ollama-ipex":  {Script: wrapper("ollama", "exec "+filepath.Join(tmp, "fakeollama")+` "$@"`)},
			"comfyui-ipex": {Script: wrapper("comfyui", "exec "+filepath.Join(tmp, "fakecomfyui")+` --listen "$2" --port "$4"`)},
		},
		Packages: map[string]string{"ollama-ipex": "ollama-ipex", "comfyui-ipex": "comfyui-ipex"}}))
	suite := `package integration

import (
	"os"
	"testing"
)

func TestHang(t *testing.T) {
	if f, err := os.OpenFile("` + running + `", os.O_WRONLY, 0); err == nil {
		f.Close()
	}
	if f, err := os.Open("` + hang + `"); err == nil {
		f.Close()
	}
}
`
	for name, body := range map[string]string{"go.mod": "module example.org/suite\n\ngo 1.22\n", "tests/integration/hang_test.go": suite} {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}

	cmd := exec.CommandContext(t.Context(), bin, "test", "--stage", "integration", "--engine", "host", "--flake", dir,
		"--assume", "intel-gpu", "--no-record")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// The suite is running once it opens the FIFO for writing.
	f, err := os.Open(running)
	require.NoError(t, err)
	f.Close()
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	var log []string
	for l := range lines {
		log = append(log, l)
	}
	err = cmd.Wait()
	var xe *exec.ExitError
	require.ErrorAs(t, err, &xe, strings.Join(log, "\n"))
	assert.Equal(t, clierr.ExitFailed, xe.ExitCode())
	assert.Contains(t, strings.Join(log, "\n"), "started ollama-ipex")
	assert.Empty(t, testlib.PidsWith(filepath.Join(tmp, "fakeollama")), "no fake Ollama left")
	assert.Empty(t, testlib.PidsWith(filepath.Join(tmp, "fakecomfyui")), "no fake ComfyUI left")
}
