# programs.ipex: the per-user IPEX environment: the IPEX Python, development
# and profiling tools, the Ollama client settings and a per-user ComfyUI.
#
# The module works with any nixpkgs: when `pkgs` already has the IPEX
# overlay (a NixOS system with nixosModules.default and
# home-manager.useGlobalPkgs) it uses `pkgs`; otherwise it extends `pkgs`
# with `programs.ipex.overlay`, which homeManagerModules.{default,ipex} set
# to the flake's overlays.default. It never sets `nixpkgs.overlays`, which
# Home Manager warns about under useGlobalPkgs (and is to refuse).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.programs.ipex;
  yaml = pkgs.formats.yaml { };
  ipexPkgs = if pkgs ? ollama-ipex || cfg.overlay == null then pkgs else pkgs.extend cfg.overlay;
in
{
  options.programs.ipex = {
    enable = lib.mkEnableOption "the IPEX user environment";

    overlay = lib.mkOption {
      type = lib.types.nullOr (
        lib.mkOptionType {
          name = "nixpkgs-overlay";
          description = "nixpkgs overlay";
          check = builtins.isFunction;
          merge = lib.mergeOneOption;
        }
      );
      default = null;
      internal = true;
      description = ''
        The overlay that provides `intel-xpu`, `ollama-ipex`, `comfyui-ipex` and
        `ipex-benchmarks` when `pkgs` lacks them. homeManagerModules.default
        and homeManagerModules.ipex set it to the flake's `overlays.default`.
      '';
    };

    package = lib.mkPackageOption ipexPkgs [ "intel-xpu" "python-env" ] {
      extraDescription = "A Python environment with torch, torchvision and ipex (intel_extension_for_pytorch).";
    };

    devTools = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Install clinfo, intel-gpu-tools (intel_gpu_top) and ipex-benchmarks.";
    };

    devices = lib.mkOption {
      type = lib.types.str;
      default = "level_zero:gpu;opencl:cpu";
      description = "ONEAPI_DEVICE_SELECTOR for the user's sessions.";
    };

    ollama = {
      enable = lib.mkEnableOption "the Ollama (IPEX) client";
      host = lib.mkOption {
        type = lib.types.str;
        default = "http://127.0.0.1:11434";
        description = "OLLAMA_HOST for the client: the system service or a remote one.";
      };
    };

    comfyui = {
      enable = lib.mkEnableOption "a per-user ComfyUI (IPEX) as a systemd user service";
      package = lib.mkPackageOption ipexPkgs "comfyui-ipex" { };
      port = lib.mkOption {
        type = lib.types.port;
        default = 8189;
        description = "Port of the user's ComfyUI (8188 is the system service's).";
      };
      modelsPath = lib.mkOption {
        type = lib.types.str;
        default = "${config.xdg.dataHome or "$HOME/.local/share"}/comfyui/models";
        defaultText = lib.literalExpression ''"''${config.xdg.dataHome}/comfyui/models"'';
        description = "Base directory of the user's models.";
      };
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = ipexPkgs ? ollama-ipex;
        message = ''
          programs.ipex: pkgs has no ollama-ipex. Import the IPEX flake's
          homeManagerModules.default (it brings the flake's overlays.default), or add
          overlays.default to nixpkgs.overlays of the system (home-manager.useGlobalPkgs)
          or of this Home Manager configuration.
        '';
      }
    ];

    home.packages = [
      cfg.package
    ]
    ++ lib.optionals cfg.devTools [
      pkgs.clinfo
      pkgs.intel-gpu-tools
      ipexPkgs.ipex-benchmarks
    ]
    ++ lib.optional cfg.ollama.enable ipexPkgs.ollama-ipex
    ++ lib.optional cfg.comfyui.enable cfg.comfyui.package;

    home.sessionVariables = {
      ONEAPI_DEVICE_SELECTOR = cfg.devices;
      ZES_ENABLE_SYSMAN = "1";
      SYCL_CACHE_PERSISTENT = "1";
    }
    // lib.optionalAttrs cfg.ollama.enable { OLLAMA_HOST = cfg.ollama.host; };

    xdg.configFile = lib.mkIf cfg.comfyui.enable {
      "comfyui/extra_model_paths.yaml".source = yaml.generate "extra_model_paths.yaml" {
        user = {
          base_path = cfg.comfyui.modelsPath;
          checkpoints = "checkpoints";
          loras = "loras";
          vae = "vae";
          controlnet = "controlnet";
          upscale_models = "upscale_models";
        };
      };
    };

    systemd.user.services = lib.mkIf cfg.comfyui.enable {
      comfyui-ipex = {
        Unit.Description = "ComfyUI (IPEX) for this user";
        Service = {
          ExecStart = lib.escapeShellArgs [
            (lib.getExe cfg.comfyui.package)
            "--listen"
            "127.0.0.1"
            "--port"
            (toString cfg.comfyui.port)
            "--extra-model-paths-config"
            "%h/.config/comfyui/extra_model_paths.yaml"
            "--output-directory"
            "%h/.local/share/comfyui/output"
            "--input-directory"
            "%h/.local/share/comfyui/input"
            "--temp-directory"
            "%t/comfyui"
            "--disable-auto-launch"
          ];
          Environment = [
            "COMFYUI_USER_DIR=%h/.local/share/comfyui/user"
            "ONEAPI_DEVICE_SELECTOR=${cfg.devices}"
          ];
          Restart = "on-failure";
        };
        Install.WantedBy = [ "default.target" ];
      };
    };
  };
}
