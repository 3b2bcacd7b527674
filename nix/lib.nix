# Helpers shared by the modules, checks and examples.
{ lib }:
rec {
  # systemd sandboxing that scores ≤ 2.0 in `systemd-analyze security`
  # (measured 1.2–1.4 with systemd 252 for a GPU service with network
  # access). Services override single keys with `//`.
  hardenedServiceConfig = {
    DynamicUser = true;
    CapabilityBoundingSet = [ "" ];
    AmbientCapabilities = [ "" ];
    NoNewPrivileges = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    PrivateTmp = true;
    PrivateUsers = true;
    PrivateMounts = true;
    # GPU access: /dev/dri only, through the render and video groups.
    PrivateDevices = false;
    DevicePolicy = "closed";
    DeviceAllow = [ "char-drm rw" ];
    SupplementaryGroups = [
      "render"
      "video"
    ];
    ProcSubset = "all"; # /proc/meminfo and /proc/cpuinfo for device discovery
    ProtectProc = "invisible";
    ProtectClock = true;
    ProtectControlGroups = true;
    ProtectHome = true;
    ProtectHostname = true;
    ProtectKernelLogs = true;
    ProtectKernelModules = true;
    ProtectKernelTunables = true;
    ProtectSystem = "strict";
    RemoveIPC = true;
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    RestrictAddressFamilies = [
      "AF_INET"
      "AF_INET6"
      "AF_UNIX"
    ];
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service @resources"
      "~@privileged"
    ];
    SystemCallErrorNumber = "EPERM";
    KeyringMode = "private";
    NotifyAccess = "none";
    UMask = "0077";
  };

  # The same for helpers that never touch the GPU.
  hardenedHelperConfig = hardenedServiceConfig // {
    PrivateDevices = true;
    DevicePolicy = "closed";
    DeviceAllow = [ ];
    SupplementaryGroups = [ ];
  };

  # ONEAPI_DEVICE_SELECTOR for a list of "gpu"/"cpu".
  deviceSelector =
    devices:
    lib.concatStringsSep ";" (
      lib.optional (lib.elem "gpu" devices) "level_zero:gpu" ++ lib.optional (lib.elem "cpu" devices) "opencl:cpu"
    );

  # Maximum allowed `systemd-analyze security` exposure, in the tenths
  # that `--threshold` takes (20 = 2.0).
  securityThreshold = 20;
}
