# services.ipex.autoUpgrade: system.autoUpgrade from a flake, with a backup
# of the models and settings before and a health check after each upgrade
# (ExecStartPre/ExecStartPost of nixos-upgrade.service).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.ipex.autoUpgrade;
  ollama = config.services.ollama-ipex;
  comfyui = config.services.comfyui-ipex;
  local = host: if host == "0.0.0.0" then "127.0.0.1" else host;
  units = lib.optional ollama.enable "ollama-ipex.service" ++ lib.optional comfyui.enable "comfyui-ipex.service";

  backup = pkgs.writeShellScript "ipex-pre-upgrade" ''
    set -eu
    stamp=$(${pkgs.coreutils}/bin/date +%Y%m%d-%H%M%S)
    ${lib.optionalString (units != [ ]) "${pkgs.systemd}/bin/systemctl stop ${lib.concatStringsSep " " units}"}
    trap '${lib.optionalString (units != [ ]) "${pkgs.systemd}/bin/systemctl start ${lib.concatStringsSep " " units}"}' EXIT
    ${lib.concatMapStringsSep "\n" (dir: ''
      if [ -d /var/lib/private/${dir} ]; then
        ${pkgs.coreutils}/bin/mkdir -p ${cfg.backupDir}/${dir}-"$stamp"
        ${lib.getExe pkgs.rsync} -a /var/lib/private/${dir}/ ${cfg.backupDir}/${dir}-"$stamp"/
      fi
    '') cfg.backupStateDirs}
    ${pkgs.findutils}/bin/find ${cfg.backupDir} -mindepth 1 -maxdepth 1 -mtime +${toString cfg.keepBackupsDays} -exec ${pkgs.coreutils}/bin/rm -rf {} +
  '';

  healthCheck = pkgs.writeShellScript "ipex-post-upgrade" ''
    set -eu
    ${lib.optionalString (units != [ ]) "${pkgs.systemd}/bin/systemctl start ${lib.concatStringsSep " " units}"}
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
    enable = lib.mkEnableOption "automatic upgrades with backup before and health check after";

    flake = lib.mkOption {
      type = lib.types.str;
      example = "github:ipex-flake/ipex-flake#workstation";
      description = "Flake reference of this machine's configuration (system.autoUpgrade.flake).";
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
      description = "Where the pre-upgrade backups go.";
    };

    backupStateDirs = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = lib.optional ollama.enable "ollama-ipex" ++ lib.optional comfyui.enable "comfyui-ipex";
      defaultText = lib.literalExpression ''[ "ollama-ipex" "comfyui-ipex" ]'';
      description = "State directories (under /var/lib/private, as DynamicUser keeps them) to back up.";
    };

    keepBackupsDays = lib.mkOption {
      type = lib.types.ints.positive;
      default = 14;
      description = "Backups older than this are removed.";
    };

    healthTimeout = lib.mkOption {
      type = lib.types.ints.positive;
      default = 120;
      description = "Seconds each service has to answer after the upgrade before the upgrade unit fails.";
    };
  };

  config = lib.mkIf cfg.enable {
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
      ExecStartPre = [ "${backup}" ];
      ExecStartPost = [ "${healthCheck}" ];
    };
  };
}
