# `nix run .#security-scan`: vulnix over the closure of the flake's packages
# plus a flake.lock audit (missing lock, unpinned or stale inputs, more than
# one nixpkgs reached from the root: lock-nixpkgs.jq).
{
  lib,
  writeShellApplication,
  vulnix,
  jq,
  coreutils,
  gnugrep,
}:
writeShellApplication {
  name = "ipex-security-scan";
  runtimeInputs = [
    vulnix
    jq
    coreutils
    gnugrep
  ];
  text =
    builtins.replaceStrings [ "@lockNixpkgsJq@" ] [ "${./lock-nixpkgs.jq}" ]
      (builtins.readFile ./ipex-security-scan.sh);
  meta = {
    description = "Vulnerability scan of the IPEX flake closure and flake.lock audit";
    license = lib.licenses.mit;
    mainProgram = "ipex-security-scan";
  };
}
