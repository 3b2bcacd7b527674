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

  ipexLib = import ../../nix/lib.nix { inherit lib; };

  # programs.ipex.ollama.backend/acceleration: which Ollama build the user
  # gets, and which devices an `ollama serve` started by the user may use
  # (ONEAPI_DEVICE_SELECTOR set in a wrapper; "auto" leaves the user's).
  ollamaSelector = {
    auto = null;
    gpu = "level_zero:gpu";
    cpu = ipexLib.noSyclDevices;
  };
  ollamaBase = if cfg.ollama.backend == "ipex" then ipexPkgs.ollama-ipex else pkgs.ollama;
  ollamaPackage =
    let
      selector = ollamaSelector.${cfg.ollama.acceleration};
    in
    lib.throwIf (cfg.ollama.backend == "cpu" && cfg.ollama.acceleration == "gpu") ''
      programs.ipex.ollama.acceleration = "gpu" needs backend = "ipex": the "cpu" backend is nixpkgs' Ollama,
      built without SYCL, which cannot use an Intel GPU.
    '' (
      if cfg.ollama.backend == "ipex" && selector != null then
        pkgs.symlinkJoin {
          name = "ollama-ipex-${cfg.ollama.acceleration}";
          paths = [ ollamaBase ];
          nativeBuildInputs = [ pkgs.makeWrapper ];
          postBuild = ''
            wrapProgram $out/bin/ollama --set ONEAPI_DEVICE_SELECTOR ${lib.escapeShellArg selector}
          '';
          meta.mainProgram = "ollama";
        }
      else
        ollamaBase
    );
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
      # No OpenCL CPU runtime is installed: "opencl:cpu" would select nothing.
      default = "level_zero:gpu";
      description = "ONEAPI_DEVICE_SELECTOR for the user's sessions.";
    };

    ollama = {
      enable = lib.mkEnableOption "the Ollama (IPEX) client";
      host = lib.mkOption {
        type = lib.types.str;
        default = "http://127.0.0.1:11434";
        description = "OLLAMA_HOST for the client: the system service or a remote one.";
      };
      backend = lib.mkOption {
        type = lib.types.enum [
          "ipex"
          "cpu"
        ];
        default = "ipex";
        description = ''
          Ollama build installed for the user: `ipex` the SYCL build
          (ollama-ipex), `cpu` nixpkgs' `ollama` without SYCL.
        '';
      };
      acceleration = lib.mkOption {
        type = lib.types.enum [
          "auto"
          "gpu"
          "cpu"
        ];
        default = "auto";
        description = ''
          Devices an `ollama serve` run by the user may use, through
          ONEAPI_DEVICE_SELECTOR in a wrapper of the `ollama` command:
          `auto` the user's `devices`, `gpu` Level Zero GPUs only, `cpu`
          no SYCL device (ggml's CPU backend). `gpu` with backend `cpu`
          fails evaluation. Only affects a server the user starts; the
          client talks to whatever server `host` names.
        '';
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
      backend = lib.mkOption {
        type = lib.types.enum [
          "ipex"
          "cpu"
        ];
        default = "ipex";
        description = ''
          `ipex`: torch on the Intel GPU (XPU). `cpu`: ComfyUI's `--cpu`,
          with no SYCL device selected.
        '';
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
    ++ lib.optional cfg.ollama.enable ollamaPackage
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
          ExecStart = lib.escapeShellArgs (
            [
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
            ]
            ++ lib.optional (cfg.comfyui.backend == "cpu") "--cpu"
          );
          Environment = [
            "COMFYUI_USER_DIR=%h/.local/share/comfyui/user"
            "ONEAPI_DEVICE_SELECTOR=${if cfg.comfyui.backend == "cpu" then ipexLib.noSyclDevices else cfg.devices}"
          ];
          Restart = "on-failure";
        };
        Install.WantedBy = [ "default.target" ];
      };
    };
  };
}
