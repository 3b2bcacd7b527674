# services.comfyui-ipex: ComfyUI on the IPEX torch, hardened to a
# `systemd-analyze security` exposure of at most 2.0.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.comfyui-ipex;
  ipexLib = import ../../nix/lib.nix { inherit lib; };
  ipexEnv = lib.optionalAttrs config.services.ipex.enable config.services.ipex.serviceEnvironment;
  stateDir = "/var/lib/comfyui-ipex";
  # As in ollama-ipex.nix: a models tree elsewhere is given to the dynamic
  # user and bind-mounted onto ${stateDir}/models.
  modelsInside = ipexLib.isPathInside stateDir cfg.modelsPath;
  modelsDir = if modelsInside then cfg.modelsPath else "${stateDir}/models";
  modelsSubdir = if modelsInside then ipexLib.relativePath stateDir cfg.modelsPath else "";
  yaml = pkgs.formats.yaml { };
  modelPathsFile = yaml.generate "extra_model_paths.yaml" cfg.settings;

  args = [
    "--listen"
    cfg.host
    "--port"
    (toString cfg.port)
    "--input-directory"
    "${stateDir}/input"
    "--output-directory"
    "${stateDir}/output"
    "--temp-directory"
    "/var/cache/comfyui-ipex"
    "--extra-model-paths-config"
    "${modelPathsFile}"
    "--disable-auto-launch"
  ]
  ++ lib.optional cfg.cpu "--cpu"
  # `--cpu` is in the same mutually exclusive argparse group as the VRAM
  # modes; ComfyUI refuses to start when both are given.
  ++ (if cfg.cpu then lib.filter (a: !lib.elem a vramModeArgs) cfg.extraArgs else cfg.extraArgs);

  vramModeArgs = [
    "--gpu-only"
    "--highvram"
    "--normalvram"
    "--lowvram"
    "--novram"
  ];

  # Adds --cpu when ipex-hardware-detect found no usable Intel GPU.
  launcher = pkgs.writeShellScript "comfyui-ipex-start" ''
    ${lib.optionalString (!cfg.cpu) ''
      if [ "''${IPEX_CPU_FALLBACK:-0}" = 1 ]; then
        # --cpu excludes the VRAM modes (one argparse group): drop them.
        args=()
        for a in "$@"; do
          case "$a" in
            ${lib.concatStringsSep "|" vramModeArgs}) ;;
            *) args+=("$a") ;;
          esac
        done
        set -- "''${args[@]}" --cpu
      fi
    ''}
    exec ${lib.getExe cfg.package} "$@"
  '';
in
{
  imports = [
    ./ipex.nix
    ./proxy.nix
  ];

  options.services.comfyui-ipex = {
    enable = lib.mkEnableOption "ComfyUI with Intel XPU (IPEX) acceleration";

    package = lib.mkPackageOption pkgs "comfyui-ipex" { };

    host = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1";
      description = "Address ComfyUI listens on.";
    };

    port = lib.mkOption {
      type = lib.types.port;
      default = 8188;
      description = "Port ComfyUI listens on.";
    };

    modelsPath = lib.mkOption {
      type = lib.types.str;
      default = "${stateDir}/models";
      description = ''
        Base directory of the models (checkpoints/, loras/, vae/, …). Inside
        ${stateDir} it is a StateDirectory of the service. Elsewhere
        (compared by whole path components) it is created if missing, given
        to the service's dynamic user before each start and bind-mounted
        onto ${stateDir}/models.
      '';
    };

    settings = lib.mkOption {
      inherit (yaml) type;
      default = { };
      description = ''
        Contents of ComfyUI's extra_model_paths.yaml. The `ipex` section
        pointing at `modelsPath` is always there; add sections for model
        trees of other tools.
      '';
    };

    cpu = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Force the CPU (`--cpu`). Without it, the CPU is still used when no Intel GPU is detected.";
    };

    extraArgs = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "--lowvram" ];
      description = "Extra ComfyUI command-line flags.";
    };

    environmentVariables = lib.mkOption {
      type = lib.types.attrsOf lib.types.str;
      default = { };
      description = "Extra environment for ComfyUI, over services.ipex's.";
    };

    allowedIPs = lib.mkOption {
      type = lib.types.nullOr (lib.types.listOf lib.types.str);
      default = null;
      description = "When set, IPAddressAllow for the service with everything else denied.";
    };

    resources = {
      memoryMax = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = "16G";
        description = "systemd MemoryMax; null for no limit.";
      };
      cpuQuota = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = "800%";
        description = "systemd CPUQuota; null for no limit.";
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
          services.comfyui-ipex.host = "${cfg.host}" listens on every interface and exposes ComfyUI without authentication.
          Put it behind services.ipex.proxy (with basicAuthFile) or set openFirewall = true to confirm.
        '';
      }
      {
        assertion =
          lib.hasPrefix "/" cfg.modelsPath
          && ipexLib.pathComponents cfg.modelsPath != [ ]
          && !ipexLib.isPathInside "/nix/store" cfg.modelsPath
          && (modelsInside || builtins.match "[A-Za-z0-9._/@+-]+" cfg.modelsPath != null);
        message = ''
          services.comfyui-ipex.modelsPath = "${cfg.modelsPath}" must be an absolute, writable directory other than /,
          outside the Nix store; outside ${stateDir} only letters, digits and . _ / @ + - (it goes into
          systemd's BindPaths=).
        '';
      }
    ];

    services.ipex.enable = lib.mkDefault true;
    services.ipex.restartOnHardwareChange = [ "comfyui-ipex.service" ];

    # Created when missing; ExecStartPre gives the tree to the dynamic user.
    systemd.tmpfiles.settings.ipex-comfyui-models = lib.mkIf (!modelsInside) {
      ${cfg.modelsPath}.d.mode = "0700";
    };

    services.comfyui-ipex.settings.ipex = {
      base_path = modelsDir;
      checkpoints = "checkpoints";
      clip = "clip";
      clip_vision = "clip_vision";
      configs = "configs";
      controlnet = "controlnet";
      embeddings = "embeddings";
      loras = "loras";
      upscale_models = "upscale_models";
      vae = "vae";
      vae_approx = "vae_approx";
    };

    systemd.services.comfyui-ipex = {
      description = "ComfyUI with Intel XPU acceleration";
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
          COMFYUI_USER_DIR = "${stateDir}/user";
          # The service's own caches: no other service writes here
          # (TorchInductor runs code it finds in its cache).
          SYCL_CACHE_DIR = "/var/cache/comfyui-ipex/sycl";
          TORCHINDUCTOR_CACHE_DIR = "/var/cache/comfyui-ipex/inductor";
          HF_HOME = "${stateDir}/huggingface";
        }
        // cfg.environmentVariables;
      serviceConfig =
        ipexLib.hardenedServiceConfig
        // {
          Type = "exec";
          ExecStart = "${launcher} ${lib.escapeShellArgs args}";
          EnvironmentFile = [ "-/run/ipex/hardware.env" ];
          # The parent first, so /var/lib/comfyui-ipex (HOME, WorkingDirectory)
          # belongs to the dynamic user too.
          StateDirectory = [
            "comfyui-ipex"
          ]
          ++ map (d: "comfyui-ipex/${d}") (
            [
              "input"
              "output"
              "user"
              "models"
              "huggingface"
            ]
            ++ lib.optional (modelsSubdir != "" && modelsSubdir != "models") modelsSubdir
          );
          CacheDirectory = [
            "comfyui-ipex"
            "comfyui-ipex/sycl"
            "comfyui-ipex/inductor"
          ];
          WorkingDirectory = stateDir;
          # oneDNN and torch generate CPU kernels at run time (JIT).
          MemoryDenyWriteExecute = false;
          Restart = "on-failure";
          RestartSec = "5s";
        }
        // lib.optionalAttrs (!modelsInside) {
          # "+": with full privileges, before the sandbox; the dynamic user
          # is resolvable by name (nss-systemd) while the unit runs.
          ExecStartPre = [ "+${pkgs.coreutils}/bin/chown -R comfyui-ipex:comfyui-ipex ${cfg.modelsPath}" ];
          BindPaths = [ "${cfg.modelsPath}:${modelsDir}" ];
        }
        // lib.optionalAttrs (cfg.resources.memoryMax != null) { MemoryMax = cfg.resources.memoryMax; }
        // lib.optionalAttrs (cfg.resources.cpuQuota != null) { CPUQuota = cfg.resources.cpuQuota; }
        // lib.optionalAttrs (cfg.allowedIPs != null) {
          IPAddressDeny = "any";
          IPAddressAllow = cfg.allowedIPs;
        };
    };

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [ cfg.port ];
  };
}
