# Exporter, health monitor, nginx proxy and Grafana provisioning together,
# with Ollama on the CPU fallback.
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
    services.ipex.proxy.enable = true;
    services.ipex.monitoring = {
      exporter.enable = true;
      health = {
        enable = true;
        checkGpu = false;
      };
      grafana.enable = true;
    };
    services.prometheus.enable = true;
    services.grafana.settings.server.http_port = 3000;
    # nixpkgs asserts that a secret key is set; a fixed one is fine in a test VM.
    services.grafana.settings.security.secret_key = "ipex-vm-test-secret-key";
  };
  testScript = ''
    machine.wait_for_unit("ollama-ipex.service")
    machine.wait_for_open_port(11434)
    machine.wait_for_unit("ipex-exporter.service")
    machine.wait_for_open_port(9835)
    metrics = machine.succeed("curl -fsS http://127.0.0.1:9835/metrics")
    assert 'ipex_service_up{service="ollama"} 1' in metrics, metrics
    assert "ipex_memory_total_bytes" in metrics, metrics
    machine.succeed("systemctl start ipex-health-monitor.service")
    machine.succeed("systemctl list-timers | grep -q ipex-health-monitor")
    machine.wait_for_unit("nginx.service")
    machine.succeed("curl -fsS -H 'Host: ai-services.local' http://127.0.0.1/ollama/api/tags | grep -q models")
    machine.succeed("systemd-analyze security --threshold=${toString self.lib.securityThreshold} ipex-exporter.service")
    machine.wait_for_unit("grafana.service")
    machine.wait_for_open_port(3000)
    machine.succeed("curl -fsS http://127.0.0.1:3000/api/health")
  '';
}
