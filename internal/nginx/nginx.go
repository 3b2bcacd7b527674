// Package nginx runs Debian's nginx as a WebDAV binary cache (HTTP PUT
// with create_full_put_path) on a loopback port: `ci bench push` uses it,
// and tests through internal/testnginx.
package nginx

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/procgroup"
)

// Server is one nginx serving Root over http://Addr.
type Server struct {
	// Dir holds nginx.conf, logs and temp files; Root is the served tree.
	Dir, Root string
	// Addr is host:port on the loopback interface.
	Addr string
	proc *procgroup.Process
}

// URL is the cache's base URL.
func (s *Server) URL() string { return "http://" + s.Addr }

const confTemplate = `%s
worker_processes 1;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %[2]s/tmp/body;
  proxy_temp_path %[2]s/tmp/proxy;
  fastcgi_temp_path %[2]s/tmp/fastcgi;
  uwsgi_temp_path %[2]s/tmp/uwsgi;
  scgi_temp_path %[2]s/tmp/scgi;
  client_max_body_size 0;
  default_type application/octet-stream;
  server {
    listen %[3]s;
    root %[4]s;
    location / {
      dav_methods PUT DELETE MKCOL;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }
  }
}
`

// Start writes a configuration into dir and starts nginx serving dir/root on
// addr ("" = a free loopback port). It returns once nginx answers.
func Start(dir, addr string) (*Server, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return nil, fmt.Errorf("nginx not on PATH: %w", err)
	}
	root := filepath.Join(dir, "root")
	for _, d := range []string{root, filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if addr == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addr = l.Addr().String()
		l.Close()
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, confTemplate, user, dir, addr, root), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// Master and workers share the process group started for the master.
	proc, err := procgroup.Start(cmd)
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, Root: root, Addr: addr, proc: proc}
	if err := s.waitReady(10 * time.Second); err != nil {
		s.Stop()
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return nil, fmt.Errorf("nginx did not start on %s: %v\n%s", addr, err, strings.TrimSpace(string(log)))
	}
	return s, nil
}

// waitReady polls until nginx answers an HTTP request or exits.
func (s *Server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get(s.URL() + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-s.proc.Done():
			return errors.New("nginx exited")
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// Stop kills nginx (SIGKILL, like a crash) and waits until it and its
// workers, which share its process group, are gone.
func (s *Server) Stop() {
	_ = s.proc.Kill()
}

// Restart starts nginx again on the same address and root.
func (s *Server) Restart() error {
	n, err := Start(s.Dir, s.Addr)
	if err != nil {
		return err
	}
	*s = *n
	return nil
}
