# ipex-upgrade-backup: the pre-upgrade backup of services.ipex.autoUpgrade.
# Copies state directories into timestamped backups with rsync and prunes
# backups by the timestamp in their names (tested for real in
# tests/modules with rsync: see ipex-upgrade-backup.sh for the interface).
{
  lib,
  writeShellApplication,
  rsync,
  coreutils,
}:
writeShellApplication {
  name = "ipex-upgrade-backup";
  runtimeInputs = [
    rsync
    coreutils
  ];
  text = builtins.readFile ./ipex-upgrade-backup.sh;
  meta = {
    description = "Timestamped state backups before an upgrade, pruned by the timestamp in their names";
    license = lib.licenses.mit;
    mainProgram = "ipex-upgrade-backup";
  };
}
