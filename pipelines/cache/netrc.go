package cache

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// NetrcFile is where nix reads HTTP credentials for binary caches: the
// netrc-file setting of NIX_CONFIG, the user's nix.conf or
// /etc/nix/nix.conf, else /etc/nix/netrc (nix's default).
func NetrcFile(getenv func(string) string) string {
	if getenv == nil {
		getenv = os.Getenv
	}
	if v := netrcSetting(getenv("NIX_CONFIG")); v != "" {
		return v
	}
	var confs []string
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		confs = append(confs, filepath.Join(d, "nix", "nix.conf"))
	} else if h := getenv("HOME"); h != "" {
		confs = append(confs, filepath.Join(h, ".config", "nix", "nix.conf"))
	}
	confDir := getenv("NIX_CONF_DIR")
	if confDir == "" {
		confDir = "/etc/nix"
	}
	confs = append(confs, filepath.Join(confDir, "nix.conf"))
	for _, c := range confs {
		data, err := os.ReadFile(c)
		if err == nil {
			if v := netrcSetting(string(data)); v != "" {
				return v
			}
		}
	}
	return filepath.Join(confDir, "netrc")
}

// netrcSetting returns the last netrc-file value in nix.conf text.
func netrcSetting(conf string) string {
	v := ""
	for _, l := range strings.Split(conf, "\n") {
		k, val, ok := strings.Cut(l, "=")
		if ok && strings.TrimSpace(k) == "netrc-file" {
			v = strings.TrimSpace(val)
		}
	}
	return v
}

// netrcAuth returns a function that adds the netrc file's credentials for
// the request's host (basic auth, as nix sends them), or nil when the file
// has none. The password stays in memory only.
func netrcAuth(path, host string) func(*http.Request) {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Split(bufio.ScanWords)
	var machine, login, password string
	var found, def bool
	var foundLogin, foundPassword, defLogin, defPassword string
	flush := func() {
		switch {
		case machine == host && !found:
			found, foundLogin, foundPassword = true, login, password
		case machine == "default" && !def:
			def, defLogin, defPassword = true, login, password
		}
	}
	for sc.Scan() {
		switch sc.Text() {
		case "machine":
			flush()
			machine, login, password = "", "", ""
			if sc.Scan() {
				machine = sc.Text()
			}
		case "default":
			flush()
			machine, login, password = "default", "", ""
		case "login":
			if sc.Scan() {
				login = sc.Text()
			}
		case "password":
			if sc.Scan() {
				password = sc.Text()
			}
		}
	}
	flush()
	if !found {
		if !def {
			return nil
		}
		foundLogin, foundPassword = defLogin, defPassword
	}
	return func(r *http.Request) { r.SetBasicAuth(foundLogin, foundPassword) }
}
