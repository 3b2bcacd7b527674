# services.ipex.monitoring: the health monitor (5-minute timer, as the
# unprivileged ipex-monitor user), the Prometheus exporter, a Prometheus
# scrape job with alert rules (alerts/*.rules.yml), optional Alertmanager
# routing to Slack and email, and a provisioned Grafana dashboard.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.ipex.monitoring;
  ipexLib = import ../../nix/lib.nix { inherit lib; };
  ollama = config.services.ollama-ipex;
  comfyui = config.services.comfyui-ipex;
  local = ipexLib.localAddress;
  ollamaUrl = "http://${local ollama.host}:${toString ollama.port}";
  comfyuiUrl = "http://${local comfyui.host}:${toString comfyui.port}";
  useGpu = lib.elem "gpu" config.services.ipex.devices;
  checkGpu = useGpu && cfg.health.checkGpu;
  am = cfg.alertmanager;
  credentials = "/run/credentials/alertmanager.service";

  # The units the health monitor may restart (and start, for ipex-cleanup):
  # the only systemd actions its polkit rule allows.
  restartable = lib.optional ollama.enable "ollama-ipex.service" ++ lib.optional comfyui.enable "comfyui-ipex.service";
  polkitRule = ipexLib.polkitUnitRule {
    user = "ipex-monitor";
    restart = restartable;
    start = [ "ipex-cleanup.service" ];
  };

  healthScript = pkgs.writeShellApplication {
    name = "ipex-health-monitor";
    runtimeInputs = [
      pkgs.curl
      pkgs.coreutils
      pkgs.gawk
      pkgs.gnused
      pkgs.systemd
    ];
    text = ''
      status=0
      ${lib.optionalString checkGpu ''
        # The GPU is usable when a render node opens read-write for the
        # render group, as it must for the services (no privileges needed).
        gpu_ok=0
        for node in /dev/dri/renderD*; do
          if true 2>/dev/null <>"$node"; then
            gpu_ok=1
            break
          fi
        done
        if [ "$gpu_ok" -ne 1 ]; then
          echo "ERROR: Intel GPU not accessible (no render node opens read-write)"
          status=1
        fi
      ''}
      ${lib.optionalString ollama.enable ''
        if ! curl -fsS --max-time 10 ${ollamaUrl}/api/tags >/dev/null; then
          echo "WARNING: Ollama not responding, restarting ollama-ipex"
          systemctl restart ollama-ipex.service
          status=1
        fi
      ''}
      ${lib.optionalString comfyui.enable ''
        if ! curl -fsS --max-time 10 ${comfyuiUrl}/system_stats >/dev/null; then
          echo "WARNING: ComfyUI not responding, restarting comfyui-ipex"
          systemctl restart comfyui-ipex.service
          status=1
        fi
      ''}
      usage=$(df --output=pcent /var/lib | tail -n1 | tr -dc '0-9')
      if [ "$usage" -gt ${toString cfg.health.diskThreshold} ]; then
        echo "WARNING: disk usage of /var/lib at ''${usage}%, starting ipex-cleanup"
        systemctl start ipex-cleanup.service
      fi
      echo "health check finished with status $status"
      exit "$status"
    '';
  };

  dashboard = pkgs.writeTextDir "ipex.json" (builtins.toJSON (import ./grafana-dashboard.nix));
in
{
  imports = [
    ./ipex.nix
    ./ollama-ipex.nix
    ./comfyui-ipex.nix
  ];

  options.services.ipex.monitoring = {
    enable = lib.mkEnableOption ''
      monitoring and alerting of the IPEX services: the health monitor, the
      exporter, Prometheus (services.prometheus.enable) with the scrape job and
      the alert rules'';

    health = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = cfg.enable;
        defaultText = lib.literalExpression "config.services.ipex.monitoring.enable";
        description = "The IPEX health monitor (every 5 minutes: GPU, service APIs, disk), run as the ipex-monitor user.";
      };
      interval = lib.mkOption {
        type = lib.types.str;
        default = "*:0/5";
        description = "OnCalendar of the health monitor timer.";
      };
      checkGpu = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = "Check that a GPU render node opens read-write (only when services.ipex.devices has \"gpu\").";
      };
      diskThreshold = lib.mkOption {
        type = lib.types.ints.between 1 100;
        default = 85;
        description = "Disk usage of /var/lib (percent) above which ipex-cleanup runs.";
      };
      cleanupAge = lib.mkOption {
        type = lib.types.str;
        default = "7d";
        description = "Age after which ipex-cleanup removes ComfyUI temp files and kernel caches (tmpfiles age syntax).";
      };
    };

    exporter = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = cfg.enable;
        defaultText = lib.literalExpression "config.services.ipex.monitoring.enable";
        description = "The IPEX Prometheus exporter (ipex-exporter).";
      };
      listenAddress = lib.mkOption {
        type = lib.types.str;
        default = "127.0.0.1";
        description = "Address the exporter listens on.";
      };
      port = lib.mkOption {
        type = lib.types.port;
        default = 9835;
        description = "Exporter port (9090 is Prometheus' own).";
      };
      package = lib.mkPackageOption pkgs "ipex-exporter" { };
      diskPaths = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ "/var/lib" ];
        description = "Paths whose file systems the exporter reports (ipex_filesystem_*; the disk alert).";
      };
      probeModel = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = if ollama.enable && ollama.loadModels != [ ] then lib.head ollama.loadModels else null;
        defaultText = lib.literalExpression "the first of services.ollama-ipex.loadModels, if any";
        description = ''
          Ollama model of the first-token probe: every probeInterval seconds
          the exporter starts a short generation with it and records the time to
          the first token (ipex_inference_probe_first_token_seconds, the
          latency alert). null disables the probe.
        '';
      };
      probeInterval = lib.mkOption {
        type = lib.types.ints.positive;
        default = 60;
        description = "Seconds between first-token probes.";
      };
    };

    alerts = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = cfg.prometheus.enable;
        defaultText = lib.literalExpression "config.services.ipex.monitoring.prometheus.enable";
        description = ''
          Add the IPEX alert rules to services.prometheus.ruleFiles: service
          down, exporter down, p95 first token over 2 s, failing probes, disk
          over 85 %, memory pressure, and (with "gpu" in
          services.ipex.devices) GPU not accessible and GPU temperature.
        '';
      };
      gpu = lib.mkOption {
        type = lib.types.bool;
        default = useGpu;
        defaultText = lib.literalExpression ''lib.elem "gpu" config.services.ipex.devices'';
        description = "Include the GPU rules (GPU not accessible, temperature).";
      };
    };

    alertmanager = {
      enable = lib.mkEnableOption "Alertmanager on 127.0.0.1, receiving the IPEX alerts and routing them to Slack and/or email";
      slack = {
        enable = lib.mkEnableOption "alerts to Slack through an incoming webhook";
        webhookUrlFile = lib.mkOption {
          type = lib.types.nullOr lib.types.str;
          default = null;
          example = "/run/secrets/slack-webhook-url";
          description = "File holding the Slack incoming-webhook URL (a secret: read through LoadCredential, never copied to the store).";
        };
        channel = lib.mkOption {
          type = lib.types.nullOr lib.types.str;
          default = null;
          example = "#ai-infrastructure";
          description = "Channel to post to; null uses the webhook's own.";
        };
      };
      email = {
        enable = lib.mkEnableOption "alerts by email";
        to = lib.mkOption {
          type = lib.types.listOf lib.types.str;
          default = [ ];
          example = [ "maintainers@example.com" ];
          description = "Recipients.";
        };
        from = lib.mkOption {
          type = lib.types.str;
          default = "alertmanager@${config.networking.hostName}";
          defaultText = lib.literalExpression ''"alertmanager@''${config.networking.hostName}"'';
          description = "Sender address.";
        };
        smarthost = lib.mkOption {
          type = lib.types.str;
          default = "localhost:25";
          example = "smtp.example.com:587";
          description = "SMTP server as host:port.";
        };
        authUsername = lib.mkOption {
          type = lib.types.nullOr lib.types.str;
          default = null;
          description = "SMTP user name; null for no authentication.";
        };
        authPasswordFile = lib.mkOption {
          type = lib.types.nullOr lib.types.str;
          default = null;
          example = "/run/secrets/smtp-password";
          description = "File holding the SMTP password (read through LoadCredential, never copied to the store).";
        };
        requireTLS = lib.mkOption {
          type = lib.types.bool;
          default = true;
          description = "Require STARTTLS (Alertmanager's require_tls).";
        };
      };
    };

    prometheus.enable = lib.mkOption {
      type = lib.types.bool;
      default = cfg.exporter.enable && config.services.prometheus.enable;
      defaultText = lib.literalExpression "exporter.enable && config.services.prometheus.enable";
      description = "Add a scrape job for the exporter to services.prometheus (enabled by monitoring.enable).";
    };

    grafana = {
      enable = lib.mkEnableOption "the provisioned IPEX Grafana dashboard (and a Prometheus datasource)";
      prometheusUrl = lib.mkOption {
        type = lib.types.str;
        default = "http://127.0.0.1:${toString config.services.prometheus.port}";
        defaultText = lib.literalExpression ''"http://127.0.0.1:''${toString config.services.prometheus.port}"'';
        description = "URL of the Prometheus datasource.";
      };
    };
  };

  config = lib.mkMerge [
    (lib.mkIf cfg.enable {
      services.prometheus.enable = lib.mkDefault true;
    })

    (lib.mkIf cfg.health.enable {
      users.users.ipex-monitor = {
        isSystemUser = true;
        group = "ipex-monitor";
        description = "IPEX health monitor";
      };
      users.groups.ipex-monitor = { };

      # systemctl restart from ipex-monitor goes through polkit; the rule
      # allows exactly the restarts the monitor makes.
      security.polkit.enable = true;
      security.polkit.extraConfig = polkitRule;

      systemd.services.ipex-health-monitor = {
        description = "IPEX Services Health Monitor";
        after = [ "polkit.service" ];
        serviceConfig = ipexLib.hardenedServiceConfig // {
          Type = "oneshot";
          ExecStart = lib.getExe healthScript;
          # A fixed unprivileged user that polkit can name: no capabilities,
          # the render group only for the GPU check.
          DynamicUser = false;
          User = "ipex-monitor";
          Group = "ipex-monitor";
          SupplementaryGroups = lib.optional checkGpu "render";
          PrivateDevices = !checkGpu;
          DeviceAllow = lib.optional checkGpu "char-drm rw";
        };
      };
      systemd.timers.ipex-health-monitor = {
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnCalendar = cfg.health.interval;
          Persistent = true;
        };
      };
      systemd.services.ipex-cleanup = {
        description = "Remove old IPEX temp files and kernel caches";
        serviceConfig = {
          Type = "oneshot";
          ExecStart = "${pkgs.systemd}/bin/systemd-tmpfiles --clean --prefix=/var/cache/private/comfyui-ipex --prefix=/var/cache/private/ollama-ipex";
        };
      };
      systemd.tmpfiles.settings.ipex-cleanup = lib.genAttrs [
        # DynamicUser services keep their CacheDirectory under /var/cache/private.
        "/var/cache/private/comfyui-ipex"
        "/var/cache/private/ollama-ipex"
      ] (_: { e.age = cfg.health.cleanupAge; });
    })

    (lib.mkIf cfg.exporter.enable {
      systemd.services.ipex-exporter = {
        description = "Prometheus exporter for IPEX metrics";
        wantedBy = [ "multi-user.target" ];
        after = [ "network.target" ];
        # GPU-service sandbox: /dev/dri through the render group, so the
        # exporter can tell whether the render node opens.
        serviceConfig = ipexLib.hardenedServiceConfig // {
          Type = "exec";
          ExecStart = lib.escapeShellArgs (
            [
              (lib.getExe cfg.exporter.package)
              "--listen-address"
              cfg.exporter.listenAddress
              "--port"
              (toString cfg.exporter.port)
            ]
            ++ lib.concatMap (p: [
              "--disk-path"
              p
            ]) cfg.exporter.diskPaths
            ++ lib.optionals ollama.enable [
              "--ollama-url"
              ollamaUrl
            ]
            ++ lib.optionals (ollama.enable && cfg.exporter.probeModel != null) [
              "--ollama-probe-model"
              cfg.exporter.probeModel
              "--probe-interval"
              (toString cfg.exporter.probeInterval)
            ]
            ++ lib.optionals comfyui.enable [
              "--comfyui-url"
              comfyuiUrl
            ]
          );
          # sysfs is read-only under ProtectKernelTunables, which is enough.
          Restart = "on-failure";
        };
      };
    })

    (lib.mkIf cfg.prometheus.enable {
      services.prometheus.scrapeConfigs = [
        {
          job_name = "ipex";
          scrape_interval = "15s";
          static_configs = [
            { targets = [ "${local cfg.exporter.listenAddress}:${toString cfg.exporter.port}" ]; }
          ];
        }
      ];
    })

    (lib.mkIf cfg.alerts.enable {
      services.prometheus.ruleFiles = [ ./alerts/ipex.rules.yml ] ++ lib.optional cfg.alerts.gpu ./alerts/ipex-gpu.rules.yml;
    })

    (lib.mkIf am.enable {
      assertions = [
        {
          assertion = am.slack.enable || am.email.enable;
          message = "services.ipex.monitoring.alertmanager needs a receiver: set slack.enable or email.enable.";
        }
        {
          assertion = am.slack.enable -> am.slack.webhookUrlFile != null;
          message = "services.ipex.monitoring.alertmanager.slack.webhookUrlFile must name the file holding the webhook URL.";
        }
        {
          assertion = am.email.enable -> am.email.to != [ ];
          message = "services.ipex.monitoring.alertmanager.email.to must list at least one recipient.";
        }
        {
          assertion = am.email.enable -> ((am.email.authUsername == null) == (am.email.authPasswordFile == null));
          message = "services.ipex.monitoring.alertmanager.email.authUsername and authPasswordFile go together.";
        }
      ];

      services.prometheus.alertmanager = {
        enable = true;
        listenAddress = lib.mkDefault "127.0.0.1";
        configuration = ipexLib.alertmanagerConfig {
          slack = if am.slack.enable then {
            webhookUrlFile = "${credentials}/slack-webhook-url";
            inherit (am.slack) channel;
          } else null;
          email = if am.email.enable then {
            inherit (am.email)
              to
              from
              smarthost
              authUsername
              requireTLS
              ;
            authPasswordFile = if am.email.authPasswordFile != null then "${credentials}/smtp-password" else null;
          } else null;
        };
      };
      # The secrets reach the DynamicUser service as credentials
      # (root-only files stay root-only; nothing goes to the store).
      systemd.services.alertmanager.serviceConfig.LoadCredential =
        lib.optional am.slack.enable "slack-webhook-url:${am.slack.webhookUrlFile}"
        ++ lib.optional (am.email.enable && am.email.authPasswordFile != null) "smtp-password:${am.email.authPasswordFile}";

      services.prometheus.alertmanagers = [
        {
          static_configs = [
            { targets = [ "${local config.services.prometheus.alertmanager.listenAddress}:${toString config.services.prometheus.alertmanager.port}" ]; }
          ];
        }
      ];
    })

    (lib.mkIf cfg.grafana.enable {
      services.grafana = {
        enable = lib.mkDefault true;
        provision = {
          enable = true;
          datasources.settings.datasources = [
            {
              name = "Prometheus (IPEX)";
              uid = "ipex-prometheus";
              type = "prometheus";
              url = cfg.grafana.prometheusUrl;
            }
          ];
          dashboards.settings.providers = [
            {
              name = "IPEX";
              type = "file";
              disableDeletion = true;
              options.path = dashboard;
            }
          ];
        };
      };
    })
  ];
}
