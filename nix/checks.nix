# checks.<system>: evaluation gates (every package, dev shell and example
# system evaluates; every attribute read from github:MordragT/nixos exists;
# the Home Manager module in the real Home Manager), NixOS VM tests
# (runNixOSTest sets requiredSystemFeatures = [ "nixos-test" "kvm" ], which
# is how CI routes them to KVM runners), the exporter's unit tests, and the
# formatter check.
#
# The evaluation gates build nothing but a small text file: a derivation's
# drvPath is read with its string context discarded, so the check does not
# depend on what it evaluated. A gate never fails to evaluate because of
# what it inspects: it records failures and its build prints them by name
# and exits 1, so `ci test --stage unit` (which shows a failed check's last
# log lines) names them.
{
  self,
  pkgs,
  lib,
  system,
  nixpkgs,
  mordrag-nixos,
  home-manager,
}:
let
  # A check that writes `value` as JSON, or prints `failures` (one line
  # each, then a summary line) and fails. Shell builtins only.
  gate =
    name: failures: value:
    pkgs.runCommandLocal name { } (
      if failures == [ ] then
        ''
          printf '%s\n' ${lib.escapeShellArg (builtins.unsafeDiscardStringContext (builtins.toJSON value))} > "$out"
        ''
      else
        ''
          ${lib.concatMapStrings (f: "echo ${lib.escapeShellArg f}\n") failures}
          echo ${lib.escapeShellArg "${name}: ${toString (builtins.length failures)} failed: ${lib.concatStringsSep ", " failures}"}
          exit 1
        ''
    );

  # The drvPath of a derivation without its context, or null when its
  # evaluation throws (a missing upstream attribute, a failed assertion,
  # an unfree or broken package).
  drvPathOf =
    drv:
    let
      r = builtins.tryEval (builtins.unsafeDiscardStringContext drv.drvPath);
    in
    if r.success then r.value else null;

  # The example systems of this system. One whose platform does not even
  # evaluate is kept, so the gates below name it.
  systems = lib.filterAttrs (
    _: n:
    let
      platform = builtins.tryEval n.pkgs.stdenv.hostPlatform.system;
    in
    !platform.success || platform.value == system
  ) self.nixosConfigurations;

  # Every output that CI builds or a user installs, by its flake attribute.
  outputs =
    lib.mapAttrs' (n: d: lib.nameValuePair "packages.${system}.${n}" d) self.packages.${system}
    // lib.mapAttrs' (n: d: lib.nameValuePair "devShells.${system}.${n}" d) self.devShells.${system}
    // lib.mapAttrs' (
      n: c: lib.nameValuePair "nixosConfigurations.${n}.config.system.build.toplevel" c.config.system.build.toplevel
    ) systems;
  drvPaths = lib.mapAttrs (_: drvPathOf) outputs;
  notEvaluating = lib.attrNames (lib.filterAttrs (_: p: p == null) drvPaths);

  # Every attribute of github:MordragT/nixos the overlay reads.
  upstream = import ../overlays/upstream.nix;
  upstreamPath = entry: [ entry.output system ] ++ entry.path;
  missingUpstream = lib.filter (e: !(lib.hasAttrByPath (upstreamPath e) mordrag-nixos)) (
    lib.attrValues upstream.reads
  );

  # Forces evaluation of a whole NixOS system (every module, every
  # assertion) without building it.
  evalSystem =
    name: nixos:
    pkgs.runCommand "eval-${name}" { } ''
      echo ${lib.escapeShellArg (builtins.unsafeDiscardStringContext nixos.config.system.build.toplevel.drvPath)} > $out
    '';

  vmTest = file: import file { inherit self pkgs lib; };
in
lib.mapAttrs' (name: nixos: lib.nameValuePair "eval-${name}" (evalSystem name nixos)) systems
// {
  # Every package's, dev shell's and example system's drvPath; fails
  # naming each output that does not evaluate
  # (`nix eval .#<output>.drvPath --show-trace` shows why).
  eval-outputs = gate "eval-outputs" (map (
    n: "${n} does not evaluate: nix eval .#${n}.drvPath --show-trace"
  ) notEvaluating) drvPaths;

  # Every attribute read from github:MordragT/nixos exists in the locked
  # revision; fails naming each missing one and the upstream file it was
  # read from.
  upstream-attrs = gate "upstream-attrs" (map (
    e:
    "github:MordragT/nixos has no ${lib.concatStringsSep "." (upstreamPath e)} (was in ${e.file} at ${upstream.commit}): update overlays/upstream.nix"
  ) missingUpstream) (lib.mapAttrs (_: e: lib.concatStringsSep "." (upstreamPath e)) upstream.reads);

  eval-home-manager = import ./home-manager-eval.nix {
    inherit
      self
      pkgs
      lib
      system
      nixpkgs
      home-manager
      gate
      ;
  };

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
