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
  stateDir = "/var/lib/ollama-ipex";
  # Models inside the state directory live in a StateDirectory entry; a
  # directory elsewhere is handed to the dynamic user (chown before start)
  # and bind-mounted onto the same place inside the state directory.
  modelsInside = ipexLib.isPathInside stateDir cfg.models;
  modelsDir = if modelsInside then cfg.models else "${stateDir}/models";
  modelsSubdir = if modelsInside then ipexLib.relativePath stateDir cfg.models else "models";
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
      default = "${stateDir}/models";
      description = ''
        Directory holding the models (OLLAMA_MODELS). Inside ${stateDir}
        it is a StateDirectory of the service. Elsewhere (compared by whole
        path components, so /var/lib/ollama-ipex2 is elsewhere) it is
        created if missing, given to the service's dynamic user before each
        start, and bind-mounted onto ${stateDir}/models.
      '';
    };

    numParallel = lib.mkOption {
      type = lib.types.ints.positive;
      default = 100;
      description = ''
        OLLAMA_NUM_PARALLEL: requests each loaded model serves at once. The
        default serves the Phase 4 target of 100 concurrent users with a p95
        time to first token under 2 s; at Ollama's own default one request
        runs at a time and the rest queue (p95 30 s at 100 users, see
        docs/tuning.md). Each slot holds its own context, so the KV cache
        grows with numParallel × contextLength: lower it on GPUs with less
        memory.
      '';
    };

    maxQueue = lib.mkOption {
      type = lib.types.ints.positive;
      default = 512;
      description = ''
        OLLAMA_MAX_QUEUE: requests waiting for a slot before Ollama answers
        503. At least the number of users beyond numParallel.
      '';
    };

    keepAlive = lib.mkOption {
      type = lib.types.str;
      default = "-1";
      example = "30m";
      description = ''
        OLLAMA_KEEP_ALIVE: how long a model stays loaded after its last
        request (a Go duration such as "30m", seconds, or a negative value
        for ever). The default keeps models loaded, so a model's load time
        never counts toward a user's first token.
      '';
    };

    contextLength = lib.mkOption {
      type = lib.types.nullOr lib.types.ints.positive;
      default = 2048;
      description = ''
        OLLAMA_CONTEXT_LENGTH: default context window of each slot (read by
        Ollama 0.6 and newer). Bounds the KV cache at numParallel ×
        contextLength tokens; null leaves Ollama's own default.
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
        assertion = !ipexLib.isWildcardAddress cfg.host || cfg.openFirewall || config.services.ipex.proxy.enable;
        message = ''
          services.ollama-ipex.host = "${cfg.host}" listens on every interface and exposes an API without authentication.
          Put it behind services.ipex.proxy (with basicAuthFile) or set openFirewall = true to confirm.
        '';
      }
      {
        assertion =
          lib.hasPrefix "/" cfg.models
          && ipexLib.pathComponents cfg.models != [ ]
          && !ipexLib.isPathInside "/nix/store" cfg.models
          && (modelsInside || builtins.match "[A-Za-z0-9._/@+-]+" cfg.models != null);
        message = ''
          services.ollama-ipex.models = "${cfg.models}" must be an absolute, writable directory other than /,
          outside the Nix store; outside ${stateDir} only letters, digits and . _ / @ + - (it goes into
          systemd's BindPaths=).
        '';
      }
    ];

    services.ipex.enable = lib.mkDefault true;
    services.ipex.restartOnHardwareChange = [ "ollama-ipex.service" ];

    # Created when missing; owner and group are left alone ("-"), since
    # ExecStartPre gives the tree to the dynamic user.
    systemd.tmpfiles.settings.ipex-ollama-models = lib.mkIf (!modelsInside) {
      ${cfg.models}.d.mode = "0700";
    };

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
          HOME = stateDir;
          OLLAMA_MODELS = modelsDir;
          OLLAMA_HOST = "${cfg.host}:${toString cfg.port}";
          OLLAMA_NUM_PARALLEL = toString cfg.numParallel;
          OLLAMA_MAX_QUEUE = toString cfg.maxQueue;
          OLLAMA_KEEP_ALIVE = cfg.keepAlive;
          # The service's own cache: no other service writes here.
          SYCL_CACHE_DIR = "/var/cache/ollama-ipex/sycl";
        }
        // lib.optionalAttrs (cfg.contextLength != null) {
          OLLAMA_CONTEXT_LENGTH = toString cfg.contextLength;
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
          ]
          ++ lib.optional (modelsSubdir != "") "ollama-ipex/${modelsSubdir}";
          CacheDirectory = [
            "ollama-ipex"
            "ollama-ipex/sycl"
          ];
          WorkingDirectory = stateDir;
          Restart = "on-failure";
          RestartSec = "5s";
        }
        // lib.optionalAttrs (!modelsInside) {
          # "+": with full privileges, before the sandbox; the dynamic user
          # is resolvable by name (nss-systemd) while the unit runs.
          ExecStartPre = [ "+${pkgs.coreutils}/bin/chown -R ollama-ipex:ollama-ipex ${cfg.models}" ];
          BindPaths = [ "${cfg.models}:${modelsDir}" ];
        }
        # An OpenCL CPU runtime compiles kernels at run time (JIT).
        // lib.optionalAttrs (config.services.ipex.cpuRuntime != null) { MemoryDenyWriteExecute = false; }
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
        OLLAMA_HOST = "${ipexLib.localAddress cfg.host}:${toString cfg.port}";
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
