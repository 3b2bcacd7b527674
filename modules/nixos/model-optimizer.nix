# services.ipex-model-optimizer: compilation cache, precision and scheduled
# maintenance, mapped onto real settings of the runtimes:
#   compilationCache  -> SYCL_CACHE_PERSISTENT/SYCL_CACHE_DIR (DPC++ kernel
#                        cache) and TORCHINDUCTOR_CACHE_DIR for both services
#   quantization      -> ComfyUI --bf16-unet/--bf16-vae, --force-fp16/--fp16-vae,
#                        or 8-bit weights (--fp8_e4m3fn-unet/-text-enc);
#                        Ollama OLLAMA_KV_CACHE_TYPE (q8_0/f16) with flash attention
#   lowVram           -> ComfyUI --lowvram
#   schedule          -> systemd timers: model update (ollama pull), cache
#                        cleanup, performance run (ipex-benchmarks)
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.ipex-model-optimizer;
  ipexLib = import ../../nix/lib.nix { inherit lib; };
  ollama = config.services.ollama-ipex;

  comfyuiPrecisionArgs = {
    bf16 = [
      "--bf16-unet"
      "--bf16-vae"
    ];
    fp16 = [
      "--force-fp16"
      "--fp16-vae"
    ];
    int8 = [
      "--fp8_e4m3fn-unet"
      "--fp8_e4m3fn-text-enc"
    ];
  };
  ollamaKvCache = {
    bf16 = "f16";
    fp16 = "f16";
    int8 = "q8_0";
  };
  cacheEnv = {
    SYCL_CACHE_PERSISTENT = "1";
    SYCL_CACHE_DIR = "${cfg.compilationCache}/sycl";
    TORCHINDUCTOR_CACHE_DIR = "${cfg.compilationCache}/inductor";
  };
  schedule = lib.types.nullOr lib.types.str;
in
{
  imports = [
    ./ipex.nix
    ./ollama-ipex.nix
    ./comfyui-ipex.nix
  ];

  options.services.ipex-model-optimizer = {
    enable = lib.mkEnableOption "IPEX model optimisation settings for Ollama and ComfyUI";

    autoCompile = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Keep compiled SYCL kernels and inductor graphs across restarts, in `compilationCache`.";
    };

    compilationCache = lib.mkOption {
      type = lib.types.str;
      default = "/var/cache/ipex-models";
      description = "Directory shared by the services for compiled kernels.";
    };

    quantization = {
      enable = lib.mkEnableOption "reduced precision";
      precision = lib.mkOption {
        type = lib.types.enum [
          "int8"
          "bf16"
          "fp16"
        ];
        default = "bf16";
        description = ''
          `bf16`/`fp16`: half-precision UNet and VAE in ComfyUI, f16 KV cache in Ollama.
          `int8`: 8-bit weights in ComfyUI (fp8, ComfyUI has no int8 path) and a q8_0 KV
          cache in Ollama (read by Ollama 0.5 and newer; older builds ignore it).
        '';
      };
    };

    memoryOptimization.lowVram = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Offload ComfyUI model parts to system memory (`--lowvram`).";
    };

    schedule = {
      modelUpdate = lib.mkOption {
        type = schedule;
        default = "weekly";
        description = "OnCalendar for re-pulling services.ollama-ipex.loadModels; null disables.";
      };
      cacheCleanup = lib.mkOption {
        type = schedule;
        default = "daily";
        description = "OnCalendar for removing compiled kernels older than 30 days; null disables.";
      };
      performanceTuning = lib.mkOption {
        type = schedule;
        default = "monthly";
        description = "OnCalendar for an ipex-benchmarks run, logged to the journal; null disables.";
      };
    };
  };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        systemd.tmpfiles.settings.ipex-model-optimizer = {
          ${cfg.compilationCache}.d = {
            mode = "1777";
            age = "30d";
          };
        };
      }

      (lib.mkIf cfg.autoCompile {
        services.ollama-ipex.environmentVariables = {
          inherit (cacheEnv) SYCL_CACHE_PERSISTENT;
          SYCL_CACHE_DIR = cacheEnv.SYCL_CACHE_DIR;
        };
        services.comfyui-ipex.environmentVariables = cacheEnv;
        # Only for enabled services: a serviceConfig definition alone would
        # create a unit without ExecStart.
        systemd.services.ollama-ipex = lib.mkIf ollama.enable {
          serviceConfig.ReadWritePaths = [ cfg.compilationCache ];
        };
        systemd.services.comfyui-ipex = lib.mkIf config.services.comfyui-ipex.enable {
          serviceConfig.ReadWritePaths = [ cfg.compilationCache ];
        };
      })

      (lib.mkIf cfg.quantization.enable {
        services.comfyui-ipex.extraArgs = comfyuiPrecisionArgs.${cfg.quantization.precision};
        services.ollama-ipex.environmentVariables = {
          OLLAMA_FLASH_ATTENTION = "1";
          OLLAMA_KV_CACHE_TYPE = ollamaKvCache.${cfg.quantization.precision};
        };
      })

      (lib.mkIf cfg.memoryOptimization.lowVram {
        services.comfyui-ipex.extraArgs = [ "--lowvram" ];
      })

      (lib.mkIf (cfg.schedule.modelUpdate != null && ollama.enable && ollama.loadModels != [ ]) {
        systemd.timers.ollama-ipex-model-loader = {
          wantedBy = [ "timers.target" ];
          timerConfig = {
            OnCalendar = cfg.schedule.modelUpdate;
            Persistent = true;
            RandomizedDelaySec = "1h";
          };
        };
      })

      (lib.mkIf (cfg.schedule.cacheCleanup != null) {
        systemd.services.ipex-model-cache-cleanup = {
          description = "Remove old compiled IPEX kernels";
          startAt = cfg.schedule.cacheCleanup;
          serviceConfig = {
            Type = "oneshot";
            ExecStart = "${pkgs.systemd}/bin/systemd-tmpfiles --clean --prefix=${cfg.compilationCache}";
          };
        };
      })

      (lib.mkIf (cfg.schedule.performanceTuning != null) {
        systemd.services.ipex-performance-run = {
          description = "IPEX sample workloads (ipex-benchmarks)";
          startAt = cfg.schedule.performanceTuning;
          environment = config.services.ipex.serviceEnvironment // cacheEnv;
          serviceConfig = ipexLib.hardenedServiceConfig // {
            Type = "oneshot";
            ExecStart = "${lib.getExe pkgs.ipex-benchmarks}";
            EnvironmentFile = [ "-/run/ipex/hardware.env" ];
            ReadWritePaths = [ cfg.compilationCache ];
            MemoryDenyWriteExecute = false;
            PrivateNetwork = true;
          };
        };
      })
    ]
  );
}
