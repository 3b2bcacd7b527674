# Monitoring and alerting with Ollama on the CPU fallback: the exporter, the
# health monitor as ipex-monitor restarting Ollama through its polkit rule
# (and nothing else), Prometheus with the alert rules and Alertmanager, the
# nginx proxy with basic authentication, and Grafana provisioning.
{
  self,
  pkgs,
  lib,
}:
pkgs.testers.runNixOSTest {
  name = "ipex-monitoring";
  nodes.machine = {
    # The modules without the overlay: runNixOSTest hands the nodes its
    # (read-only) pkgs, which already has the overlay, and rejects any
    # nixpkgs.overlays definition such as nixosModules.default's.
    imports = [ ../../modules/nixos ];
    virtualisation.memorySize = 4096;
    services.ipex.devices = [ "cpu" ];
    services.ollama-ipex.enable = true;
    services.ipex.proxy = {
      enable = true;
      # Test credentials; nginx reads {PLAIN} entries. Real systems keep the
      # htpasswd file outside the store (/run/secrets/...).
      basicAuthFile = "/etc/ipex-test-htpasswd";
    };
    environment.etc."ipex-test-htpasswd".text = "alice:{PLAIN}wonderland\n";
    environment.etc."ipex-test-smtp-password".text = "test-smtp-password\n";
    services.ipex.monitoring = {
      enable = true;
      health.checkGpu = false;
      grafana.enable = true;
      alertmanager = {
        enable = true;
        email = {
          enable = true;
          to = [ "ops@example.test" ];
          smarthost = "127.0.0.1:2525";
          authUsername = "alerts";
          authPasswordFile = "/etc/ipex-test-smtp-password";
          requireTLS = false;
        };
      };
    };
    services.grafana.settings.server.http_port = 3000;
    # nixpkgs asserts that a secret key is set; a fixed one is fine in a test VM.
    services.grafana.settings.security.secret_key = "ipex-vm-test-secret-key";
  };
  testScript = ''
    import json

    machine.wait_for_unit("ollama-ipex.service")
    machine.wait_for_open_port(11434)
    machine.wait_for_unit("ipex-exporter.service")
    machine.wait_for_open_port(9835)
    metrics = machine.succeed("curl -fsS http://127.0.0.1:9835/metrics")
    assert 'ipex_service_up{service="ollama"} 1' in metrics, metrics
    assert "ipex_memory_total_bytes" in metrics, metrics
    assert 'ipex_filesystem_avail_bytes{path="/var/lib"}' in metrics, metrics
    assert "utilization" not in metrics, "no metric is called utilisation: " + metrics
    machine.succeed("systemd-analyze security --threshold=${toString self.lib.securityThreshold} ipex-exporter.service")

    with subtest("the health monitor runs as ipex-monitor and restarts Ollama through polkit"):
        machine.succeed("systemctl start ipex-health-monitor.service")
        machine.succeed("systemctl list-timers | grep -q ipex-health-monitor")
        assert machine.succeed("systemctl show -p User --value ipex-health-monitor.service").strip() == "ipex-monitor"
        machine.succeed("systemctl stop ollama-ipex.service")
        # Ollama was down: the check fails (exit 1) after restarting it.
        machine.fail("systemctl start ipex-health-monitor.service")
        machine.wait_for_unit("ollama-ipex.service")
        machine.wait_for_open_port(11434)
        machine.succeed("journalctl -u ipex-health-monitor.service | grep -q 'restarting ollama-ipex'")

    with subtest("the polkit rule allows only those restarts"):
        machine.succeed("runuser -u ipex-monitor -- systemctl restart ollama-ipex.service")
        machine.fail("runuser -u ipex-monitor -- systemctl restart nginx.service")
        machine.fail("runuser -u ipex-monitor -- systemctl stop ollama-ipex.service")
        machine.succeed("systemctl is-active ollama-ipex.service")

    with subtest("the proxy asks for credentials"):
        machine.wait_for_unit("nginx.service")
        machine.succeed("test \"$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: ai-services.local' http://127.0.0.1/ollama/api/tags)\" = 401")
        machine.wait_until_succeeds("curl -fsS -u alice:wonderland -H 'Host: ai-services.local' http://127.0.0.1/ollama/api/tags | grep -q models")

    with subtest("Prometheus has the alert rules and sends to Alertmanager"):
        machine.wait_for_unit("prometheus.service")
        machine.wait_for_unit("alertmanager.service")
        machine.wait_for_open_port(9093)
        rules = json.loads(machine.wait_until_succeeds("curl -fsS http://127.0.0.1:9090/api/v1/rules"))
        names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
        for want in ["IpexServiceDown", "IpexDiskUsageHigh", "IpexMemoryPressure", "IpexInferenceLatencyHigh"]:
            assert want in names, names
        assert "IpexGpuNotAccessible" not in names, "no GPU rules on a CPU-only host"
        machine.wait_until_succeeds("curl -fsS http://127.0.0.1:9090/api/v1/alertmanagers | grep -q 127.0.0.1:9093")
        # The SMTP password reaches Alertmanager as a credential, not through its configuration.
        machine.fail("grep -r test-smtp-password /nix/store/*-alertmanager.yml 2>/dev/null")

    machine.wait_for_unit("grafana.service")
    machine.wait_for_open_port(3000)
    machine.succeed("curl -fsS http://127.0.0.1:3000/api/health")
  '';
}
