# services.ipex.autoUpgrade: system.autoUpgrade from a release channel of the
# flake, with a backup of configuration and state before an upgrade that
# changes the system, and a health check after it (ExecStartPre and
# ExecStartPost of nixos-upgrade.service).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.ipex.autoUpgrade;
  ipexLib = import ../../nix/lib.nix { inherit lib; };
  ollama = config.services.ollama-ipex;
  comfyui = config.services.comfyui-ipex;
  local = ipexLib.localAddress;
  units = lib.optional ollama.enable "ollama-ipex.service" ++ lib.optional comfyui.enable "comfyui-ipex.service";
  backupTool = pkgs.callPackage ../../pkgs/ipex-upgrade-backup { };

  # The configuration nixos-rebuild will build: "<ref>#<name>", the host
  # name when the reference has no attribute.
  flakeParts = builtins.match "([^#]*)(#(.*))?" cfg.flake;
  flakeRef = builtins.elemAt flakeParts 0;
  flakeAttr =
    let
      a = builtins.elemAt flakeParts 2;
    in
    if a == null || a == "" then config.networking.hostName else a;
  toplevel = "${flakeRef}#nixosConfigurations.\"${flakeAttr}\".config.system.build.toplevel";

  # Model stores inside a state directory, excluded unless backupModels.
  # Paths are relative to /var/lib/<name> (DynamicUser keeps it under
  # /var/lib/private/<name>).
  modelExcludes = {
    ollama-ipex = lib.optional (ipexLib.isPathInside "/var/lib/ollama-ipex" ollama.models) (
      ipexLib.relativePath "/var/lib/ollama-ipex" ollama.models
    );
    comfyui-ipex =
      lib.optional (ipexLib.isPathInside "/var/lib/comfyui-ipex" comfyui.modelsPath) (
        ipexLib.relativePath "/var/lib/comfyui-ipex" comfyui.modelsPath
      )
      # Hugging Face downloads (HF_HOME) are model stores too.
      ++ [ "huggingface" ];
  };
  # Model stores outside the state directories, backed up only with backupModels.
  externalModels =
    lib.optional (ollama.enable && !ipexLib.isPathInside "/var/lib/ollama-ipex" ollama.models) {
      name = "ollama-ipex-models";
      path = ollama.models;
    }
    ++ lib.optional (comfyui.enable && !ipexLib.isPathInside "/var/lib/comfyui-ipex" comfyui.modelsPath) {
      name = "comfyui-ipex-models";
      path = comfyui.modelsPath;
    };

  backupArgs = ipexLib.upgradeBackupArgs {
    inherit (cfg) backupDir backupModels;
    keepDays = cfg.keepBackupsDays;
    stateDirs = cfg.backupStateDirs;
    excludes = modelExcludes;
    inherit externalModels;
  };

  # Builds the configuration the upgrade will switch to (nixos-rebuild then
  # finds it built) and backs up only when it differs from the running one.
  # Stops nothing: the state is copied while the services run.
  preUpgrade = pkgs.writeShellScript "ipex-pre-upgrade" ''
    set -euo pipefail
    new=$(${config.nix.package}/bin/nix --extra-experimental-features 'nix-command flakes' \
      build --refresh --no-link --print-out-paths ${lib.escapeShellArg toplevel})
    exec ${lib.getExe backupTool} ${lib.escapeShellArgs backupArgs} \
      --new-system "$new" --current-system /run/current-system
  '';

  healthCheck = pkgs.writeShellScript "ipex-post-upgrade" ''
    set -eu
    ${lib.optionalString (units != [ ]) "${pkgs.systemd}/bin/systemctl start ${lib.escapeShellArgs units}"}
    check() {
      for _ in $(${pkgs.coreutils}/bin/seq 1 ${toString cfg.healthTimeout}); do
        if ${lib.getExe pkgs.curl} -fsS --max-time 5 "$1" >/dev/null; then return 0; fi
        ${pkgs.coreutils}/bin/sleep 1
      done
      echo "post-upgrade health check failed: $1" >&2
      return 1
    }
    ${lib.optionalString ollama.enable "check http://${local ollama.host}:${toString ollama.port}/api/tags"}
    ${lib.optionalString comfyui.enable "check http://${local comfyui.host}:${toString comfyui.port}/system_stats"}
  '';
in
{
  imports = [
    ./ollama-ipex.nix
    ./comfyui-ipex.nix
  ];

  options.services.ipex.autoUpgrade = {
    enable = lib.mkEnableOption "automatic upgrades from a release channel, with backup before and health check after";

    channel = lib.mkOption {
      type = lib.types.enum [
        "stable"
        "beta"
        "dev"
      ];
      default = "stable";
      description = ''
        Release channel the default `flake` follows (the `channels/<name>`
        ref that `ci release promote` moves): `stable` (full test suite and
        an approval), `beta` (integration tests passed) or `dev` (unit
        tests passed).
      '';
    };

    flake = lib.mkOption {
      type = lib.types.str;
      default = "github:ipex-flake/ipex-flake?ref=channels/${cfg.channel}";
      defaultText = lib.literalExpression ''"github:ipex-flake/ipex-flake?ref=channels/''${channel}"'';
      example = "github:example/infra?ref=channels/stable#server";
      description = ''
        Flake reference of this machine's configuration
        (system.autoUpgrade.flake); `#name` selects
        nixosConfigurations.name, otherwise the host name. Point it at a
        channel ref, not the default branch, so machines take only what was
        promoted.
      '';
    };

    dates = lib.mkOption {
      type = lib.types.str;
      default = "04:40";
      description = "When to upgrade (system.autoUpgrade.dates).";
    };

    randomizedDelaySec = lib.mkOption {
      type = lib.types.str;
      default = "45min";
      description = "system.autoUpgrade.randomizedDelaySec.";
    };

    allowReboot = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "system.autoUpgrade.allowReboot.";
    };

    backupDir = lib.mkOption {
      type = lib.types.str;
      default = "/var/backup/ipex";
      description = "Where the pre-upgrade backups go (any path; it is passed as one argument).";
    };

    backupStateDirs = lib.mkOption {
      type = lib.types.listOf (lib.types.strMatching "[A-Za-z0-9._-]+");
      default = lib.optional ollama.enable "ollama-ipex" ++ lib.optional comfyui.enable "comfyui-ipex";
      defaultText = lib.literalExpression ''[ "ollama-ipex" "comfyui-ipex" ]'';
      description = "State directories (under /var/lib/private, as DynamicUser keeps them) to back up.";
    };

    backupModels = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Also copy the model stores (Ollama's models, ComfyUI's models and
        Hugging Face downloads, inside or outside the state directories).
        Off by default: models are large and can be pulled again.
      '';
    };

    keepBackupsDays = lib.mkOption {
      type = lib.types.ints.positive;
      default = 14;
      description = "Backups whose timestamp (in their name) is older than this are removed.";
    };

    healthTimeout = lib.mkOption {
      type = lib.types.ints.positive;
      default = 120;
      description = "Seconds each service has to answer after the upgrade before the upgrade unit fails.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.hasPrefix "/" cfg.backupDir;
        message = "services.ipex.autoUpgrade.backupDir = \"${cfg.backupDir}\" must be an absolute path.";
      }
    ];

    system.autoUpgrade = {
      enable = true;
      inherit (cfg)
        flake
        dates
        randomizedDelaySec
        allowReboot
        ;
    };

    systemd.tmpfiles.settings.ipex-backup.${cfg.backupDir}.d.mode = "0700";

    systemd.services.nixos-upgrade.serviceConfig = {
      ExecStartPre = [ "${preUpgrade}" ];
      ExecStartPost = [ "${healthCheck}" ];
    };
  };
}
