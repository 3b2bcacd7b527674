# services.ollama-ipex: Ollama built with SYCL (Intel XPU), hardened to a
# `systemd-analyze security` exposure of at most 2.0.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.ollama-ipex;
  ipexLib = import ../../nix/lib.nix { inherit lib; };
  ipexEnv = lib.optionalAttrs config.services.ipex.enable config.services.ipex.serviceEnvironment;
in
{
  imports = [
    ./ipex.nix
    ./proxy.nix
  ];

  options.services.ollama-ipex = {
    enable = lib.mkEnableOption "Ollama with Intel XPU (SYCL) acceleration";

    package = lib.mkPackageOption pkgs "ollama-ipex" { };

    host = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1";
      description = "Address Ollama listens on.";
    };

    port = lib.mkOption {
      type = lib.types.port;
      default = 11434;
      description = "Port Ollama listens on.";
    };

    models = lib.mkOption {
      type = lib.types.str;
      default = "/var/lib/ollama-ipex/models";
      description = ''
        Directory holding the models (OLLAMA_MODELS). Paths outside
        /var/lib/ollama-ipex must exist and be writable by the service;
        they are added to ReadWritePaths.
      '';
    };

    loadModels = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "llama3.2:3b" ];
      description = "Models pulled by `ollama-ipex-model-loader.service` after Ollama starts.";
    };

    environmentVariables = lib.mkOption {
      type = lib.types.attrsOf lib.types.str;
      default = { };
      example = {
        OLLAMA_NUM_PARALLEL = "2";
      };
      description = "Extra environment for Ollama, over services.ipex's.";
    };

    allowedIPs = lib.mkOption {
      type = lib.types.nullOr (lib.types.listOf lib.types.str);
      default = null;
      example = [
        "localhost"
        "10.0.0.0/8"
      ];
      description = ''
        When set, IPAddressAllow for the service with everything else denied.
        Leave null when Ollama must reach the model registry to pull models.
      '';
    };

    resources = {
      memoryMax = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = "8G";
        description = "systemd MemoryMax for the service; null for no limit.";
      };
      cpuQuota = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = "400%";
        description = "systemd CPUQuota for the service; null for no limit.";
      };
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open `port` in the firewall.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.host != "0.0.0.0" || cfg.openFirewall || config.services.ipex.proxy.enable;
        message = ''
          services.ollama-ipex.host = "0.0.0.0" exposes an API without authentication.
          Put it behind services.ipex.proxy (with basicAuthFile) or set openFirewall = true to confirm.
        '';
      }
    ];

    services.ipex.enable = lib.mkDefault true;

    systemd.services.ollama-ipex = {
      description = "Ollama with Intel XPU acceleration";
      wantedBy = [ "multi-user.target" ];
      wants = [ "ipex-hardware-detect.service" ];
      after = [
        "network.target"
        "ipex-hardware-detect.service"
      ];
      environment =
        ipexEnv
        // {
          HOME = "/var/lib/ollama-ipex";
          OLLAMA_MODELS = cfg.models;
          OLLAMA_HOST = "${cfg.host}:${toString cfg.port}";
          SYCL_CACHE_DIR = "/var/cache/ollama-ipex/sycl";
        }
        // cfg.environmentVariables;
      serviceConfig =
        ipexLib.hardenedServiceConfig
        // {
          Type = "exec";
          ExecStart = "${lib.getExe cfg.package} serve";
          # Written by ipex-hardware-detect: the device selector, or the CPU fallback.
          EnvironmentFile = [ "-/run/ipex/hardware.env" ];
          StateDirectory = [
            "ollama-ipex"
            "ollama-ipex/models"
          ];
          CacheDirectory = [ "ollama-ipex" ];
          WorkingDirectory = "/var/lib/ollama-ipex";
          ReadWritePaths = lib.optional (!lib.hasPrefix "/var/lib/ollama-ipex" cfg.models) cfg.models;
          Restart = "on-failure";
          RestartSec = "5s";
        }
        // lib.optionalAttrs (cfg.resources.memoryMax != null) { MemoryMax = cfg.resources.memoryMax; }
        // lib.optionalAttrs (cfg.resources.cpuQuota != null) { CPUQuota = cfg.resources.cpuQuota; }
        // lib.optionalAttrs (cfg.allowedIPs != null) {
          IPAddressDeny = "any";
          IPAddressAllow = cfg.allowedIPs;
        };
    };

    systemd.services.ollama-ipex-model-loader = lib.mkIf (cfg.loadModels != [ ]) {
      description = "Pull models into Ollama (IPEX)";
      wantedBy = [ "ollama-ipex.service" ];
      wants = [ "network-online.target" ];
      after = [
        "ollama-ipex.service"
        "network-online.target"
      ];
      bindsTo = [ "ollama-ipex.service" ];
      environment = {
        OLLAMA_HOST = "${cfg.host}:${toString cfg.port}";
        HOME = "/tmp";
      };
      script = lib.concatMapStringsSep "\n" (m: "${lib.getExe cfg.package} pull ${lib.escapeShellArg m}") cfg.loadModels;
      serviceConfig = ipexLib.hardenedHelperConfig // {
        Type = "oneshot";
        Restart = "on-failure";
        RestartSec = "30s";
      };
    };

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [ cfg.port ];

    environment.systemPackages = [ cfg.package ];
  };
}
