# services.ipex.monitoring: the health monitor (5-minute timer), the
# Prometheus exporter, a Prometheus scrape job and a provisioned Grafana
# dashboard.
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
  local = host: if host == "0.0.0.0" then "127.0.0.1" else host;
  ollamaUrl = "http://${local ollama.host}:${toString ollama.port}";
  comfyuiUrl = "http://${local comfyui.host}:${toString comfyui.port}";
  useGpu = lib.elem "gpu" config.services.ipex.devices;

  healthScript = pkgs.writeShellApplication {
    name = "ipex-health-monitor";
    runtimeInputs = [
      pkgs.curl
      pkgs.coreutils
      pkgs.gawk
      pkgs.gnused
      pkgs.systemd
      pkgs.intel-gpu-tools
    ];
    text = ''
      status=0
      ${lib.optionalString (useGpu && cfg.health.checkGpu) ''
        # intel_gpu_top samples until stopped: a timeout (124) means it
        # opened the GPU and ran; any other non-zero status means it could not.
        gpu_rc=0
        timeout -s INT -k 2 3 intel_gpu_top -J -s 500 -o /dev/null >/dev/null 2>&1 || gpu_rc=$?
        if [ "$gpu_rc" -ne 0 ] && [ "$gpu_rc" -ne 124 ]; then
          echo "ERROR: Intel GPU not accessible (intel_gpu_top exit $gpu_rc)"
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
    health = {
      enable = lib.mkEnableOption "the IPEX health monitor (every 5 minutes: GPU, service APIs, disk)";
      interval = lib.mkOption {
        type = lib.types.str;
        default = "*:0/5";
        description = "OnCalendar of the health monitor timer.";
      };
      checkGpu = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = "Probe the GPU with intel_gpu_top (needs an Intel GPU; off on CPU-only hosts).";
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
      enable = lib.mkEnableOption "the IPEX Prometheus exporter";
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
    };

    prometheus.enable = lib.mkOption {
      type = lib.types.bool;
      default = cfg.exporter.enable && config.services.prometheus.enable;
      defaultText = lib.literalExpression "exporter.enable && config.services.prometheus.enable";
      description = "Add a scrape job for the exporter to services.prometheus.";
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
    (lib.mkIf cfg.health.enable {
      systemd.services.ipex-health-monitor = {
        description = "IPEX Services Health Monitor";
        serviceConfig = {
          Type = "oneshot";
          ExecStart = lib.getExe healthScript;
          # Root for systemctl restart and intel_gpu_top; sandboxed otherwise.
          ProtectSystem = "strict";
          ProtectHome = true;
          PrivateTmp = true;
          NoNewPrivileges = true;
          ProtectKernelModules = true;
          ProtectKernelLogs = true;
          ProtectControlGroups = true;
          RestrictAddressFamilies = [
            "AF_INET"
            "AF_INET6"
            "AF_UNIX"
          ];
          RestrictNamespaces = true;
          LockPersonality = true;
          CapabilityBoundingSet = [
            "CAP_PERFMON"
            "CAP_SYS_ADMIN"
          ];
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
          ExecStart = "${pkgs.systemd}/bin/systemd-tmpfiles --clean --prefix=/var/cache/private/comfyui-ipex --prefix=/var/cache/private/ollama-ipex --prefix=/var/cache/ipex-models";
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
        serviceConfig = ipexLib.hardenedHelperConfig // {
          Type = "exec";
          ExecStart = lib.escapeShellArgs (
            [
              (lib.getExe cfg.exporter.package)
              "--listen-address"
              cfg.exporter.listenAddress
              "--port"
              (toString cfg.exporter.port)
            ]
            ++ lib.optionals ollama.enable [
              "--ollama-url"
              ollamaUrl
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
