# Headless server: both services behind nginx with authentication and TLS,
# monitoring with alerts to Slack and email, the model optimizer, and
# automatic upgrades from the stable channel with backup and health check.
{
  networking.hostName = "ipex-server";

  services.ipex = {
    enable = true;
    optimization = "balanced";
    proxy = {
      enable = true;
      # A name that resolves to this machine from the internet, for ACME.
      serverName = "ai.example.com";
      basicAuthFile = "/run/secrets/ipex-htpasswd";
      forceSSL = true;
      enableACME = true;
      openFirewall = true;
    };
    monitoring = {
      enable = true;
      grafana.enable = true;
      alertmanager = {
        enable = true;
        slack = {
          enable = true;
          webhookUrlFile = "/run/secrets/slack-webhook-url";
          channel = "#ai-infrastructure";
        };
        email = {
          enable = true;
          to = [ "maintainers@example.com" ];
          from = "alertmanager@example.com";
          smarthost = "smtp.example.com:587";
          authUsername = "alertmanager@example.com";
          authPasswordFile = "/run/secrets/smtp-password";
        };
      };
    };
    autoUpgrade = {
      enable = true;
      # The stable channel; "?ref=channels/beta" follows beta.
      flake = "github:ipex-flake/ipex-flake?ref=channels/stable#server";
    };
  };

  services.ollama-ipex = {
    enable = true;
    resources.memoryMax = "8G";
    loadModels = [ "llama3.2:3b" ];
  };
  services.comfyui-ipex.enable = true;

  services.ipex-model-optimizer = {
    enable = true;
    quantization = {
      enable = true;
      precision = "bf16";
    };
  };

  security.acme = {
    acceptTerms = true;
    defaults.email = "admin@example.com";
  };

  services.grafana.settings.security = {
    admin_password = "$__file{/run/secrets/grafana-admin-password}";
    # Required by nixpkgs' Grafana module (no default any more); `openssl rand -hex 32`.
    secret_key = "$__file{/run/secrets/grafana-secret-key}";
  };
}
