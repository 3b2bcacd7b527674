package modules

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// polkitHarness loads a rules file into a fake polkit object (addRule,
// Result) and answers each request on stdin with the rules' verdict, as
// polkitd does: the first rule that returns something other than
// NOT_HANDLED decides.
const polkitHarness = `
"use strict";
const fs = require("fs");
const rules = [];
const polkit = {
  Result: { YES: "yes", NO: "no", AUTH_ADMIN: "auth_admin", NOT_HANDLED: null },
  addRule(f) { rules.push(f); },
  log() {},
};
new Function("polkit", fs.readFileSync(process.argv[2], "utf8"))(polkit);
const requests = JSON.parse(fs.readFileSync(0, "utf8"));
const verdicts = requests.map(r => {
  const action = { id: r.id, lookup: k => r.details[k] };
  const subject = { user: r.user };
  for (const rule of rules) {
    const v = rule(action, subject);
    if (v !== null && v !== undefined) return v;
  }
  return "not_handled";
});
process.stdout.write(JSON.stringify(verdicts));
`

// TestPolkitRuleOfHealthMonitor evaluates the rule the monitoring module
// installs (nix/lib.nix polkitUnitRule) and runs it in node: ipex-monitor may
// restart the two services and start ipex-cleanup, nothing else.
func TestPolkitRuleOfHealthMonitor(t *testing.T) {
	testlib.CheckPath(t, "node")
	var rule string
	evalLib(t, `ipex.polkitUnitRule { user = "ipex-monitor"; restart = [ "ollama-ipex.service" "comfyui-ipex.service" ]; start = [ "ipex-cleanup.service" ]; }`, &rule)
	dir := t.TempDir()
	ruleFile := filepath.Join(dir, "10-ipex.rules")
	require.NoError(t, os.WriteFile(ruleFile, []byte(rule), 0o644))
	harness := filepath.Join(dir, "harness.js")
	require.NoError(t, os.WriteFile(harness, []byte(polkitHarness), 0o644))

	const manage = "org.freedesktop.systemd1.manage-units"
	type request struct {
		ID      string            `json:"id"`
		User    string            `json:"user"`
		Details map[string]string `json:"details"`
	}
	tests := []struct {
		name string
		req  request
		want string
	}{
		{"restart ollama", request{manage, "ipex-monitor", map[string]string{"unit": "ollama-ipex.service", "verb": "restart"}}, "yes"},
		{"restart comfyui", request{manage, "ipex-monitor", map[string]string{"unit": "comfyui-ipex.service", "verb": "restart"}}, "yes"},
		{"start cleanup", request{manage, "ipex-monitor", map[string]string{"unit": "ipex-cleanup.service", "verb": "start"}}, "yes"},
		{"stop ollama", request{manage, "ipex-monitor", map[string]string{"unit": "ollama-ipex.service", "verb": "stop"}}, "not_handled"},
		{"start ollama", request{manage, "ipex-monitor", map[string]string{"unit": "ollama-ipex.service", "verb": "start"}}, "not_handled"},
		{"restart cleanup", request{manage, "ipex-monitor", map[string]string{"unit": "ipex-cleanup.service", "verb": "restart"}}, "not_handled"},
		{"restart another unit", request{manage, "ipex-monitor", map[string]string{"unit": "sshd.service", "verb": "restart"}}, "not_handled"},
		{"another user", request{manage, "alice", map[string]string{"unit": "ollama-ipex.service", "verb": "restart"}}, "not_handled"},
		{"another action", request{"org.freedesktop.systemd1.manage-unit-files", "ipex-monitor", map[string]string{"unit": "ollama-ipex.service", "verb": "restart"}}, "not_handled"},
		{"reboot", request{"org.freedesktop.login1.reboot", "ipex-monitor", map[string]string{}}, "not_handled"},
	}
	reqs := make([]request, len(tests))
	for i, tt := range tests {
		reqs[i] = tt.req
	}
	in, err := json.Marshal(reqs)
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), "node", harness, ruleFile)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && errors.As(err, &exit) {
		t.Fatalf("node: %v\n%s", err, exit.Stderr)
	}
	require.NoError(t, err)
	var got []string
	require.NoError(t, json.Unmarshal(out, &got), string(out))
	require.Len(t, got, len(tests))
	for i, tt := range tests {
		assert.Equal(t, tt.want, got[i], tt.name)
	}
}
