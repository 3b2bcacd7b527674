# Headless server: both services behind nginx, monitoring, the model
# optimizer and automatic upgrades with backup and health check.
{
  networking.hostName = "ipex-server";

  services.ipex = {
    enable = true;
    optimization = "balanced";
    proxy = {
      enable = true;
      serverName = "ai-services.local";
      basicAuthFile = "/run/secrets/ipex-htpasswd";
    };
    monitoring = {
      health.enable = true;
      exporter.enable = true;
      grafana.enable = true;
    };
    autoUpgrade = {
      enable = true;
      flake = "github:ipex-flake/ipex-flake#server";
    };
  };

  services.ollama-ipex = {
    enable = true;
    resources.memoryMax = "8G";
  };
  services.comfyui-ipex.enable = true;

  services.ipex-model-optimizer = {
    enable = true;
    quantization = {
      enable = true;
      precision = "bf16";
    };
  };

  services.prometheus.enable = true;
  services.grafana.settings.security = {
    admin_password = "$__file{/run/secrets/grafana-admin-password}";
    # Required by nixpkgs' Grafana module (no default any more); `openssl rand -hex 32`.
    secret_key = "$__file{/run/secrets/grafana-secret-key}";
  };
  networking.firewall.allowedTCPPorts = [ 80 ];
}
