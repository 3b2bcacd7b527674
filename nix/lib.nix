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

  # ONEAPI_DEVICE_SELECTOR for a list of "gpu"/"cpu", in the order given.
  # "gpu" is Level Zero's GPU; "cpu" is SYCL's OpenCL CPU device only when
  # an OpenCL CPU runtime is installed (openclCpu), otherwise the
  # applications' own CPU code (ggml's CPU backend, torch on the CPU), which
  # needs no SYCL device. With nothing left, every SYCL backend is discarded.
  # Only builtins, so tests evaluate it without nixpkgs.
  deviceSelector =
    {
      devices,
      openclCpu ? false,
    }:
    let
      entry =
        d:
        if d == "gpu" then
          [ "level_zero:gpu" ]
        else if d == "cpu" && openclCpu then
          [ "opencl:cpu" ]
        else
          [ ];
      entries = builtins.concatMap entry devices;
    in
    if entries == [ ] then noSyclDevices else builtins.concatStringsSep ";" entries;

  # A selector that discards every SYCL device (negative filters only).
  noSyclDevices = "!level_zero:*;!opencl:*";

  # True for addresses that listen on every interface: 0.0.0.0, ::, [::],
  # the long IPv6 forms, "*" and the empty string.
  isWildcardAddress =
    host:
    builtins.elem host [
      ""
      "*"
      "0.0.0.0"
      "::"
      "[::]"
      "0:0:0:0:0:0:0:0"
      "[0:0:0:0:0:0:0:0]"
    ];

  # The loopback address to reach a service listening on host.
  localAddress =
    host:
    if host == "0.0.0.0" || host == "" || host == "*" then
      "127.0.0.1"
    else if isWildcardAddress host then
      "[::1]"
    else if builtins.match ".*:.*" host != null && builtins.match "\\[.*" host == null then
      "[${host}]"
    else
      host;

  # The non-empty components of an absolute path ("/a//b/" -> [ "a" "b" ]).
  pathComponents = path: builtins.filter (c: builtins.isString c && c != "") (builtins.split "/+" path);

  # True when path is dir or below it, comparing whole components, so
  # /var/lib/ollama-ipex2 is not inside /var/lib/ollama-ipex.
  isPathInside =
    dir: path:
    let
      d = pathComponents dir;
      p = pathComponents path;
      n = builtins.length d;
    in
    builtins.length p >= n && builtins.genList (i: builtins.elemAt p i) n == d;

  # The path of `path` below `dir` ("" when equal); only for isPathInside.
  relativePath =
    dir: path:
    builtins.concatStringsSep "/" (
      let
        d = pathComponents dir;
        p = pathComponents path;
        n = builtins.length d;
      in
      builtins.genList (i: builtins.elemAt p (i + n)) (builtins.length p - n)
    );

  # True when an octal file mode string ("1777", "0666") lets everyone write.
  worldWritable =
    mode:
    let
      s = mode;
      last = builtins.substring (builtins.stringLength s - 1) 1 s;
    in
    builtins.elem last [
      "2"
      "3"
      "6"
      "7"
    ];

  # Alertmanager configuration routing every alert to Slack and/or email.
  # Secrets are never in it: the Slack webhook URL and the SMTP password are
  # read from files (api_url_file, auth_password_file), which the module
  # hands to alertmanager with systemd's LoadCredential. Only builtins, so
  # tests evaluate it and run a real alertmanager on it.
  alertmanagerConfig =
    {
      slack ? null, # { webhookUrlFile; channel ? null; }
      email ? null, # { to; from; smarthost; authUsername ? null; authPasswordFile ? null; requireTLS ? true; }
      groupWait ? "30s",
      groupInterval ? "5m",
      repeatInterval ? "4h",
    }:
    {
      route = {
        receiver = "ipex";
        group_by = [
          "alertname"
          "instance"
        ];
        group_wait = groupWait;
        group_interval = groupInterval;
        repeat_interval = repeatInterval;
      };
      receivers = [
        (
          {
            name = "ipex";
          }
          // (
            if slack == null then
              { }
            else
              {
                slack_configs = [
                  (
                    {
                      api_url_file = slack.webhookUrlFile;
                      send_resolved = true;
                    }
                    // (if (slack.channel or null) == null then { } else { inherit (slack) channel; })
                  )
                ];
              }
          )
          // (
            if email == null then
              { }
            else
              {
                email_configs = [
                  (
                    {
                      to = builtins.concatStringsSep ", " email.to;
                      inherit (email) from smarthost;
                      require_tls = email.requireTLS or true;
                      send_resolved = true;
                    }
                    // (if (email.authUsername or null) == null then { } else { auth_username = email.authUsername; })
                    // (
                      if (email.authPasswordFile or null) == null then { } else { auth_password_file = email.authPasswordFile; }
                    )
                  )
                ];
              }
          )
        )
      ];
    };

  # A polkit rule (JavaScript) that lets `user` restart the units in
  # `restart` and start the units in `start` through systemd, and nothing
  # else. ES5 only, as polkit's interpreter needs.
  polkitUnitRule =
    {
      user,
      restart ? [ ],
      start ? [ ],
    }:
    ''
      // ${user} may restart ${builtins.concatStringsSep ", " restart} and start
      // ${builtins.concatStringsSep ", " start}; nothing else.
      polkit.addRule(function(action, subject) {
        if (action.id !== "org.freedesktop.systemd1.manage-units" || subject.user !== ${builtins.toJSON user}) {
          return polkit.Result.NOT_HANDLED;
        }
        var unit = action.lookup("unit");
        var verb = action.lookup("verb");
        if (${builtins.toJSON restart}.indexOf(unit) >= 0 && verb === "restart") {
          return polkit.Result.YES;
        }
        if (${builtins.toJSON start}.indexOf(unit) >= 0 && verb === "start") {
          return polkit.Result.YES;
        }
        return polkit.Result.NOT_HANDLED;
      });
    '';

  # Arguments of ipex-upgrade-backup for services.ipex.autoUpgrade: every
  # state directory under stateRoot, without the model stores inside them
  # (excludes: name -> paths relative to the state directory) unless
  # backupModels, which also adds the model stores outside them
  # (externalModels: [ { name; path; } ]). Only builtins, so tests run the
  # script with exactly these arguments.
  upgradeBackupArgs =
    {
      backupDir,
      keepDays,
      stateDirs,
      excludes ? { },
      externalModels ? [ ],
      backupModels ? false,
      stateRoot ? "/var/lib/private",
    }:
    [
      "--backup-dir"
      backupDir
      "--keep-days"
      (toString keepDays)
    ]
    ++ builtins.concatMap (dir: [
      "--source"
      "${dir}:${stateRoot}/${dir}"
    ]) stateDirs
    ++ (
      if backupModels then
        builtins.concatMap (m: [
          "--source"
          "${m.name}:${m.path}"
        ]) externalModels
      else
        builtins.concatMap (
          dir:
          builtins.concatMap (rel: [
            "--exclude"
            "${dir}:/${rel}/"
          ]) (builtins.filter (rel: rel != "") (excludes.${dir} or [ ]))
        ) stateDirs
    );

  # Maximum allowed `systemd-analyze security` exposure, in the tenths
  # that `--threshold` takes (20 = 2.0).
  securityThreshold = 20;
}
