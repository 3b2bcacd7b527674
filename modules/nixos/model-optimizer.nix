# services.ipex-model-optimizer: compilation cache, precision and scheduled
# maintenance, mapped onto real settings of the runtimes:
#   autoCompile       -> SYCL_CACHE_PERSISTENT (DPC++ kernel cache) in each
#                        service's own CacheDirectory (SYCL_CACHE_DIR,
#                        TORCHINDUCTOR_CACHE_DIR): never shared, since
#                        TorchInductor runs code it finds in its cache
#   quantization      -> ComfyUI --bf16-unet/--bf16-vae, --force-fp16/--fp16-vae,
#                        or 8-bit weights (--fp8_e4m3fn-unet/-text-enc);
#                        Ollama OLLAMA_KV_CACHE_TYPE (q8_0/f16) with flash attention
#   lowVram           -> ComfyUI --lowvram
#   schedule          -> systemd timers: model update (ollama pull), cache
#                        cleanup, performance run (ipex-benchmarks)
# The Phase 4 options without a counterpart in these runtimes
# (calibrationDataset, enableUnifiedMemory, memoryPool, swapThreshold) exist
# and fail evaluation with the reason when set.
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
  # Each service's own CacheDirectory (DynamicUser keeps it under /var/cache/private).
  serviceCaches = [
    "/var/cache/private/ollama-ipex/sycl"
    "/var/cache/private/comfyui-ipex/sycl"
    "/var/cache/private/comfyui-ipex/inductor"
    "/var/cache/private/ipex-performance-run"
  ];
  schedule = lib.types.nullOr lib.types.str;
  unsupported = lib.filter (u: u.set) [
    {
      set = cfg.quantization.calibrationDataset != null;
      message = ''
        services.ipex-model-optimizer.quantization.calibrationDataset is not supported: neither runtime
        calibrates at run time. Ollama quantizes when a model is imported (`ollama create --quantize q8_0`),
        and ComfyUI loads 8-bit weights as they are (precision = "int8"). Calibrate offline
        (Intel Neural Compressor) and load the quantized model; remove the option.
      '';
    }
    {
      set = cfg.memoryOptimization.enableUnifiedMemory;
      message = ''
        services.ipex-model-optimizer.memoryOptimization.enableUnifiedMemory is not supported: the SYCL
        builds of Ollama (llama.cpp) and the IPEX torch allocate device memory themselves and read no
        setting for unified shared memory; integrated Intel GPUs share system memory already.
        Remove the option (lowVram offloads ComfyUI model parts to system memory).
      '';
    }
    {
      set = cfg.memoryOptimization.memoryPool != null;
      message = ''
        services.ipex-model-optimizer.memoryOptimization.memoryPool is not supported: neither runtime has a
        setting for the size of its memory pool. Limit system memory with
        services.ollama-ipex.resources.memoryMax / services.comfyui-ipex.resources.memoryMax, and the
        Ollama KV cache with numParallel and contextLength; remove the option.
      '';
    }
    {
      set = cfg.memoryOptimization.swapThreshold != null;
      message = ''
        services.ipex-model-optimizer.memoryOptimization.swapThreshold is not supported: neither runtime
        swaps models by a memory threshold. Ollama unloads models after keepAlive, ComfyUI offloads with
        lowVram; remove the option.
      '';
    }
  ];
in
{
  imports = [
    ./ipex.nix
    ./ollama-ipex.nix
    ./comfyui-ipex.nix
    (lib.mkRemovedOptionModule [ "services" "ipex-model-optimizer" "compilationCache" ] ''
      A compilation cache shared by the services was world-writable, and TorchInductor runs code it
      finds in its cache. Each service now keeps compiled kernels in its own CacheDirectory
      (/var/cache/ollama-ipex, /var/cache/comfyui-ipex); autoCompile turns persistence on.
    '')
  ];

  options.services.ipex-model-optimizer = {
    enable = lib.mkEnableOption "IPEX model optimisation settings for Ollama and ComfyUI";

    autoCompile = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Keep compiled SYCL kernels (SYCL_CACHE_PERSISTENT) and inductor
        graphs across restarts, each service in its own CacheDirectory.
      '';
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
      calibrationDataset = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        description = "Not supported (evaluation fails with the reason when set): no runtime here calibrates at run time.";
      };
    };

    memoryOptimization = {
      lowVram = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = "Offload ComfyUI model parts to system memory (`--lowvram`).";
      };
      enableUnifiedMemory = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = "Not supported (evaluation fails with the reason when true): no runtime here reads a unified-memory setting.";
      };
      memoryPool = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        description = "Not supported (evaluation fails with the reason when set): no runtime here sizes a memory pool.";
      };
      swapThreshold = lib.mkOption {
        type = lib.types.nullOr (lib.types.numbers.between 0 1);
        default = null;
        description = "Not supported (evaluation fails with the reason when set): no runtime here swaps models by a threshold.";
      };
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
        assertions = map (u: {
          assertion = false;
          inherit (u) message;
        }) unsupported;

        # Compiled kernels older than 30 days go (systemd-tmpfiles --clean).
        systemd.tmpfiles.settings.ipex-model-optimizer = lib.genAttrs serviceCaches (_: {
          e.age = "30d";
        });
      }

      (lib.mkIf cfg.autoCompile {
        # The cache directories themselves are set by each service module.
        services.ollama-ipex.environmentVariables.SYCL_CACHE_PERSISTENT = "1";
        services.comfyui-ipex.environmentVariables.SYCL_CACHE_PERSISTENT = "1";
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
            ExecStart = "${pkgs.systemd}/bin/systemd-tmpfiles --clean ${lib.concatMapStringsSep " " (p: "--prefix=${p}") serviceCaches}";
          };
        };
      })

      (lib.mkIf (cfg.schedule.performanceTuning != null) {
        systemd.services.ipex-performance-run = {
          description = "IPEX sample workloads (ipex-benchmarks)";
          startAt = cfg.schedule.performanceTuning;
          environment = config.services.ipex.serviceEnvironment // {
            SYCL_CACHE_PERSISTENT = "1";
            SYCL_CACHE_DIR = "/var/cache/ipex-performance-run/sycl";
            TORCHINDUCTOR_CACHE_DIR = "/var/cache/ipex-performance-run/inductor";
          };
          serviceConfig = ipexLib.hardenedServiceConfig // {
            Type = "oneshot";
            ExecStart = "${lib.getExe pkgs.ipex-benchmarks}";
            EnvironmentFile = [ "-/run/ipex/hardware.env" ];
            CacheDirectory = [
              "ipex-performance-run"
              "ipex-performance-run/sycl"
              "ipex-performance-run/inductor"
            ];
            MemoryDenyWriteExecute = false;
            PrivateNetwork = true;
          };
        };
      })
    ]
  );
}
