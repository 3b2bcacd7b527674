// Package testsshd runs Debian's OpenSSH server on a loopback port as a Nix
// remote builder for tests: generated host and client keys, and a remote
// store that is a second store directory on this machine.
package testsshd

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/procgroup"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

// Server is one sshd and the Nix builder it serves.
type Server struct {
	// Dir holds the keys, sshd_config, the remote program and the store.
	Dir string
	// Port is sshd's loopback port.
	Port int
	// Store is the root of the builder's store (a chroot store: its paths
	// live under Store/nix/store).
	Store string
	proc  *procgroup.Process
}

// sshdPath is Debian's sshd.
const sshdPath = "/usr/sbin/sshd"

// Available says why the server cannot run here ("" when it can).
func Available() string {
	if _, err := os.Stat(sshdPath); err != nil {
		return "openssh-server is not installed (" + sshdPath + ")"
	}
	for _, tool := range []string{"ssh", "ssh-keygen", "nix-daemon"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " is not on PATH"
		}
	}
	if os.Geteuid() != 0 {
		return "sshd with a generated host key must run as root here"
	}
	// Nix builds into a store under another root (the builder's second
	// store directory) only in its sandbox: mount, PID, network, IPC and
	// UTS namespaces.
	if out, err := exec.Command("unshare", "--mount", "--pid", "--fork", "--net", "--ipc", "--uts", "true").CombinedOutput(); err != nil {
		return fmt.Sprintf("this machine cannot create the namespaces of nix's sandbox (unshare: %v: %s), which builds in the builder's second store directory need: run as root with CAP_SYS_ADMIN, e.g. in a container started with --privileged", err, strings.TrimSpace(string(out)))
	}
	return ""
}

// Start starts a builder for the test and stops it when the test ends. It
// skips the test when sshd or nix cannot run here, and fails it then under
// CI=true.
func Start(t testing.TB, sandboxPaths ...string) *Server {
	t.Helper()
	testlib.CheckPath(t, "nix")
	if why := Available(); why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("a Nix remote builder over sshd is required in CI (CI=true): %s; install openssh-server in .ci/run", why)
		}
		t.Skip(why)
	}
	srv, err := New(t.TempDir(), sandboxPaths...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	return srv
}

// New writes keys and configuration into dir and starts sshd on a free
// loopback port. sandboxPaths are extra paths the builds on the builder may
// read (the chroot store builds in nix's sandbox).
func New(dir string, sandboxPaths ...string) (*Server, error) {
	s := &Server{Dir: dir, Store: filepath.Join(dir, "store")}
	for _, k := range []string{"host_key", "client_key"} {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ipex-flake-test", "-f", filepath.Join(dir, k)).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "client_key.pub"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		return nil, err
	}
	// The builder's nix: no substituters, /bin/sh (dash) and its libraries
	// in the sandbox, which a chroot store always uses.
	paths := append([]string{"/bin/sh=/usr/bin/dash", "/lib", "/lib64", "/usr/lib"}, sandboxPaths...)
	// ssh-ng:// runs `nix-daemon --stdio`, ssh:// `nix-store --serve`.
	for name, program := range map[string]string{"remote-daemon": "nix-daemon", "remote-nix-store": "nix-store"} {
		prog := fmt.Sprintf("#!/bin/sh\nexport NIX_CONFIG='substituters =\nsandbox-paths = %s'\nexec %s \"$@\"\n", strings.Join(paths, " "), program)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(prog), 0o755); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %[2]s/host_key
AuthorizedKeysFile %[2]s/authorized_keys
PidFile %[2]s/sshd.pid
PermitRootLogin yes
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
`, s.Port, dir)
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	// sshd's privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, err
	}
	return s, s.Start()
}

// Start (re)starts sshd and returns once it accepts connections.
func (s *Server) Start() error {
	cmd := exec.Command(sshdPath, "-D", "-f", filepath.Join(s.Dir, "sshd_config"), "-E", filepath.Join(s.Dir, "sshd.log"))
	proc, err := procgroup.Start(cmd)
	if err != nil {
		return fmt.Errorf("starting sshd: %w", err)
	}
	s.proc = proc
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-proc.Done():
			log, _ := os.ReadFile(filepath.Join(s.Dir, "sshd.log"))
			return fmt.Errorf("sshd exited: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("sshd does not accept connections on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URI is the builder's store URI: ssh-ng to root on loopback, whose nix
// daemon serves the chroot store under Store.
func (s *Server) URI() string {
	return fmt.Sprintf("ssh-ng://root@127.0.0.1?remote-store=local?root=%s&remote-program=%s", s.Store, filepath.Join(s.Dir, "remote-daemon"))
}

// LegacyURI is the builder's ssh:// store URI (nix-store --serve), with
// the same store under Store.
func (s *Server) LegacyURI() string {
	return fmt.Sprintf("ssh://root@127.0.0.1?remote-store=local?root=%s&remote-program=%s", s.Store, filepath.Join(s.Dir, "remote-nix-store"))
}

// Machine is the builder's line in nix's machine syntax: URI, systems, key,
// max-jobs, speed, supported and mandatory features, host public key.
func (s *Server) Machine(systems string, jobs int, features string) (string, error) {
	return s.MachineFor(s.URI(), systems, jobs, features)
}

// MachineFor is Machine with another store URI of this builder (LegacyURI).
func (s *Server) MachineFor(uri, systems string, jobs int, features string) (string, error) {
	host, err := os.ReadFile(filepath.Join(s.Dir, "host_key.pub"))
	if err != nil {
		return "", err
	}
	if features == "" {
		features = "-"
	}
	return fmt.Sprintf("%s %s %s %d 1 %s - %s", uri, systems, filepath.Join(s.Dir, "client_key"), jobs, features,
		base64.StdEncoding.EncodeToString(host)), nil
}

// SSHOpts is NIX_SSHOPTS for reaching the builder (its port).
func (s *Server) SSHOpts() string { return "-p " + strconv.Itoa(s.Port) }

// Kill stops sshd and every process it started (sessions and the remote
// nix daemons in them), as when the build machine goes away.
func (s *Server) Kill() {
	if s.proc == nil {
		return
	}
	for range 20 {
		pids := descendants(s.proc.Pid())
		if len(pids) == 0 {
			break
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
	// sshd's own group (sessions start groups of their own, above).
	_ = s.proc.Kill()
	s.proc = nil
}

// descendants lists pid and the processes below it that are still alive.
func descendants(root int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p != root || alive(root) {
			out = append(out, p)
		}
		queue = append(queue, children[p]...)
	}
	return out
}

func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	f := strings.Fields(rest)
	return len(f) > 0 && f[0] != "Z"
}
