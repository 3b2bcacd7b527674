# checks.<system>: module evaluation in the example systems, NixOS VM tests
# (runNixOSTest sets requiredSystemFeatures = [ "nixos-test" "kvm" ], which
# is how CI routes them to KVM runners), the exporter's unit tests, and the
# formatter check.
{
  self,
  pkgs,
  lib,
  system,
}:
let
  # Forces evaluation of a whole NixOS system (every module, every
  # assertion) without building it.
  evalSystem =
    name: nixos:
    pkgs.runCommand "eval-${name}" { } ''
      echo ${lib.escapeShellArg (builtins.unsafeDiscardStringContext nixos.config.system.build.toplevel.drvPath)} > $out
    '';

  vmTest = file: import file { inherit self pkgs lib; };
in
lib.mapAttrs' (name: nixos: lib.nameValuePair "eval-${name}" (evalSystem name nixos)) (
  lib.filterAttrs (_: n: n.pkgs.stdenv.hostPlatform.system == system) self.nixosConfigurations
)
// {
  eval-home-manager = import ./home-manager-eval.nix { inherit self pkgs lib; };

  vm-ollama = vmTest ./tests/ollama.nix;
  vm-comfyui = vmTest ./tests/comfyui.nix;
  vm-monitoring = vmTest ./tests/monitoring.nix;

  ipex-exporter = self.packages.${system}.ipex-exporter;

  formatting = pkgs.runCommand "check-formatting" { nativeBuildInputs = [ pkgs.nixfmt-rfc-style ]; } ''
    cd ${self}
    find . -name '*.nix' -not -path './.git/*' -print0 | xargs -0 nixfmt --check
    touch $out
  '';
}
