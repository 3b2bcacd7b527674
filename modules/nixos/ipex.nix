# services.ipex: Intel GPU runtime (Level Zero, compute runtime,
# hardware.graphics), device selection, optimisation profiles, hardware
# assertions, run-time hardware detection and the memory check.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.ipex;
  ipexLib = import ../../nix/lib.nix { inherit lib; };
  useGpu = lib.elem "gpu" cfg.devices;
  openclCpu = cfg.cpuRuntime != null;
  selector = ipexLib.deviceSelector {
    inherit (cfg) devices;
    inherit openclCpu;
  };
  # What the services get when no usable Intel GPU exists.
  fallbackSelector = ipexLib.deviceSelector {
    devices = [ "cpu" ];
    inherit openclCpu;
  };

  # Modes with the world-write bit in the tmpfiles rules of these modules
  # (settings named ipex*), as "path (type mode)".
  worldWritableRules = lib.concatLists (
    lib.mapAttrsToList (
      name: paths:
      lib.optionals (lib.hasPrefix "ipex" name) (
        lib.concatLists (
          lib.mapAttrsToList (
            path: types:
            lib.concatLists (
              lib.mapAttrsToList (
                type: entry:
                lib.optional (entry ? mode && entry.mode != null && ipexLib.worldWritable entry.mode) "${path} (${type} ${entry.mode})"
              ) types
            )
          ) paths
        )
      )
    ) config.systemd.tmpfiles.settings
  );

  # Environment shared by every IPEX workload, per optimisation profile.
  # SYCL_* and ZES_* are read by the DPC++ runtime and Level Zero,
  # IPEX_* by intel_extension_for_pytorch.
  profileEnvironment = {
    performance = {
      SYCL_PI_LEVEL_ZERO_USE_IMMEDIATE_COMMANDLISTS = "1";
      SYCL_CACHE_PERSISTENT = "1";
      IPEX_XPU_ONEDNN_LAYOUT = "1";
    };
    balanced = {
      SYCL_CACHE_PERSISTENT = "1";
    };
    power = {
      SYCL_PI_LEVEL_ZERO_USE_IMMEDIATE_COMMANDLISTS = "0";
    };
  };
  governor = {
    performance = "performance";
    balanced = "schedutil";
    power = "powersave";
  };

  # Writes /run/ipex/hardware.env (scripts/ipex-hardware-detect.sh, tested
  # with a fake sysfs in tests/modules).
  detectScript = pkgs.writeShellApplication {
    name = "ipex-hardware-detect";
    runtimeInputs = [
      pkgs.coreutils
      pkgs.systemd
    ];
    text = builtins.readFile ./scripts/ipex-hardware-detect.sh;
  };
  detectCommand = lib.escapeShellArgs (
    [
      (lib.getExe detectScript)
      "--selector"
      selector
      "--fallback-selector"
      fallbackSelector
    ]
    ++ lib.optional useGpu "--want-gpu"
    ++ lib.concatMap (u: [
      "--restart"
      u
    ]) cfg.restartOnHardwareChange
  );
in
{
  options.services.ipex = {
    enable = lib.mkEnableOption "the Intel XPU (IPEX) runtime: Level Zero, compute runtime and device setup";

    autoDetectHardware = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Detect Intel GPUs at boot (`ipex-hardware-detect.service`) and write
        the device selector to /run/ipex/hardware.env, which the IPEX
        services read. Without a usable Intel GPU the services fall back to the CPU.
      '';
    };

    devices = lib.mkOption {
      type = lib.types.listOf (
        lib.types.enum [
          "gpu"
          "cpu"
        ]
      );
      default = [
        "gpu"
        "cpu"
      ];
      description = "Devices IPEX workloads may use, in order of preference; sets ONEAPI_DEVICE_SELECTOR.";
    };

    optimization = lib.mkOption {
      type = lib.types.enum [
        "performance"
        "balanced"
        "power"
      ];
      default = "balanced";
      description = ''
        Tuning profile. `performance`: CPU governor performance, immediate
        Level Zero command lists, persistent SYCL kernel cache, oneDNN
        blocked layouts. `balanced`: schedutil and the kernel cache.
        `power`: powersave governor, batched command lists.
      '';
    };

    gpu = {
      generation = lib.mkOption {
        type = lib.types.nullOr lib.types.ints.positive;
        default = null;
        example = 12;
        description = ''
          Intel graphics generation of this machine (12 = Xe: Tiger Lake,
          Alder Lake, Arc Alchemist; 13+ = Battlemage and newer) when known.
          Declaring it enables the check that it is at least 12.
        '';
      };
      driver = lib.mkOption {
        type = lib.types.enum [
          "i915"
          "xe"
        ];
        default = "i915";
        description = "Kernel driver for the GPU. `xe` needs `forceProbe` with the PCI id on current kernels.";
      };
      forceProbe = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "56a0";
        description = "PCI device id passed to `<driver>.force_probe`, for GPUs the driver does not yet bind by default.";
      };
    };

    cpuRuntime = lib.mkOption {
      type = lib.types.nullOr lib.types.package;
      default = null;
      description = ''
        An OpenCL CPU runtime (ICD) for SYCL's `opencl:cpu` device. When
        set, it is added to `hardware.graphics.extraPackages`, `"cpu"` in
        `devices` selects `opencl:cpu` (in the order given) and the services
        may map writable memory executable (the runtime's JIT). When null
        (the default, since none is packaged here), `"cpu"` means the
        applications' own CPU code (ggml's CPU backend, torch on the CPU),
        which needs no SYCL device.
      '';
    };

    restartOnHardwareChange = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      internal = true;
      description = "Units restarted when ipex-hardware-detect finds a different device selector.";
    };

    environment = lib.mkOption {
      type = lib.types.attrsOf lib.types.str;
      default = { };
      description = "Extra environment for every IPEX service, merged over the profile's.";
    };

    users = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      description = "Users added to the render and video groups, so they can run IPEX workloads.";
    };

    memoryCheck = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = "Run `ipex-memory-check.service` at boot, warning when RAM is below `minimumGiB`.";
      };
      minimumGiB = lib.mkOption {
        type = lib.types.ints.positive;
        default = 16;
        description = "Memory below which the check logs a warning.";
      };
    };

    serviceEnvironment = lib.mkOption {
      type = lib.types.attrsOf lib.types.str;
      readOnly = true;
      description = "The environment the IPEX services get (computed from devices, optimization and environment).";
    };
  };

  config = lib.mkMerge [
    {
      # Defined whether or not services.ipex is enabled, so modules that read
      # it (ipex-performance-run, ipexEnv) never hit an undefined option.
      services.ipex.serviceEnvironment = {
        ONEAPI_DEVICE_SELECTOR = selector;
        # Level Zero sysman: memory and frequency queries used by Ollama and IPEX.
        ZES_ENABLE_SYSMAN = "1";
      }
      // lib.optionalAttrs (!useGpu) { IPEX_CPU_FALLBACK = "1"; }
      // profileEnvironment.${cfg.optimization}
      // cfg.environment;
    }

    {
      # Checked whether or not services.ipex is enabled: any module here may add rules.
      assertions = [
        {
          assertion = worldWritableRules == [ ];
          message = ''
            IPEX tmpfiles rules must not be world-writable: ${lib.concatStringsSep ", " worldWritableRules}.
            Give each service its own CacheDirectory/StateDirectory, or a dedicated group with mode 2770.
          '';
        }
      ];
    }

    (lib.mkIf cfg.enable {
      assertions = [
        {
          assertion = useGpu -> config.hardware.graphics.enable;
          message = ''
            services.ipex.devices contains "gpu" but hardware.graphics.enable is false.
            Set hardware.graphics.enable = true (or remove "gpu" from services.ipex.devices to run on the CPU only).
          '';
        }
        {
          assertion = cfg.gpu.generation == null || cfg.gpu.generation >= 12;
          message = ''
            services.ipex.gpu.generation = ${toString cfg.gpu.generation}: IPEX on XPU needs an Intel Xe GPU
            (generation 12 or newer: Arc, Iris Xe, Data Center GPU). Use services.ipex.devices = [ "cpu" ]
            on this machine, or correct the declared generation.
          '';
        }
        {
          assertion = cfg.devices != [ ];
          message = ''services.ipex.devices is empty; list at least one of "gpu" and "cpu".'';
        }
        {
          assertion = cfg.gpu.driver == "xe" -> cfg.gpu.forceProbe != null;
          message = ''
            services.ipex.gpu.driver = "xe" needs services.ipex.gpu.forceProbe set to the GPU's PCI id
            (see `lspci -nn | grep -i vga`, e.g. "56a0").
          '';
        }
      ];

      hardware.graphics = lib.mkIf (useGpu || openclCpu) {
        enable = lib.mkDefault true;
        extraPackages =
          lib.optionals useGpu [
            pkgs.intel-compute-runtime
            pkgs.intel-media-driver
          ]
          ++ lib.optional openclCpu cfg.cpuRuntime;
      };

      boot.kernelParams =
        lib.optionals (useGpu && cfg.gpu.driver == "i915") [
          # GuC submission and HuC firmware loading (Gen12+); an i915 parameter,
          # the xe driver always uses GuC.
          "i915.enable_guc=3"
        ]
        ++ lib.optional (cfg.gpu.forceProbe != null) "${cfg.gpu.driver}.force_probe=${cfg.gpu.forceProbe}"
        ++ lib.optional (cfg.gpu.driver == "xe" && cfg.gpu.forceProbe != null) "i915.force_probe=!${cfg.gpu.forceProbe}";

      powerManagement.cpuFreqGovernor = lib.mkDefault governor.${cfg.optimization};

      environment.systemPackages = [
        pkgs.level-zero
        pkgs.clinfo
        pkgs.intel-gpu-tools
      ];
      environment.variables = config.services.ipex.serviceEnvironment;

      users.users = lib.genAttrs cfg.users (_: {
        extraGroups = [
          "render"
          "video"
        ];
      });

      systemd.tmpfiles.settings.ipex."/run/ipex".d = {
        mode = "0755";
        user = "root";
        group = "root";
      };

      # A render node that appears after boot (a slow driver, a late
      # firmware load) runs the detection again (RUN acts on every "add"
      # event, unlike SYSTEMD_WANTS on an already plugged device), which restarts the services
      # when the selector changes; so the CPU fallback does not stick until
      # the next reboot.
      services.udev.extraRules = lib.mkIf (cfg.autoDetectHardware && useGpu) ''
        ACTION=="add", SUBSYSTEM=="drm", KERNEL=="renderD*", RUN+="${pkgs.systemd}/bin/systemctl --no-block start ipex-hardware-detect.service"
      '';

      systemd.services.ipex-hardware-detect = lib.mkIf cfg.autoDetectHardware {
        description = "Detect Intel GPUs for IPEX workloads";
        wantedBy = [ "multi-user.target" ];
        # Coldplug requested: devices present at boot are being announced;
        # later ones start this unit again through the udev rule above.
        after = [
          "systemd-udev-trigger.service"
          "systemd-tmpfiles-setup.service"
        ];
        serviceConfig = {
          # No RemainAfterExit: each start (boot, udev) runs the detection again.
          Type = "oneshot";
          ExecStart = detectCommand;
          ReadWritePaths = [ "/run/ipex" ];
          ProtectSystem = "strict";
          ProtectHome = true;
          PrivateNetwork = true;
          NoNewPrivileges = true;
          CapabilityBoundingSet = [ "" ];
          RestrictAddressFamilies = [ "AF_UNIX" ];
          SystemCallFilter = [
            "@system-service"
            "~@privileged"
          ];
          UMask = "0022";
        };
      };

      systemd.services.ipex-memory-check = lib.mkIf cfg.memoryCheck.enable {
        description = "Validate system memory for IPEX workloads";
        wantedBy = [ "multi-user.target" ];
        path = [
          pkgs.procps
          pkgs.gawk
        ];
        script = ''
          total=$(free -g | awk '/^Mem:/{print $2}')
          if [ "$total" -lt ${toString cfg.memoryCheck.minimumGiB} ]; then
            echo "Warning: $total GiB RAM detected, less than ${toString cfg.memoryCheck.minimumGiB} GiB. Performance may be limited."
          else
            echo "$total GiB RAM detected."
          fi
        '';
        serviceConfig = ipexLib.hardenedHelperConfig // {
          Type = "oneshot";
          RemainAfterExit = true;
          PrivateNetwork = true;
          RestrictAddressFamilies = [ "AF_UNIX" ];
        };
      };
    })
  ];
}
