# Evaluates overlays/default.nix and the evaluation gates of nix/checks.nix
# offline, against a stand-in of github:MordragT/nixos with the shape of its
# source at the commit overlays/upstream.nix names (attribute names from
# pkgs/default.nix, pkgs/by-name, pkgs/by-scope, pkgs/by-lang,
# pkgs/overrides). Derivations are /bin/sh fixtures.
#
#   repo: the repository root
#   drop: attribute paths (lists) to remove from the stand-in
#   nonce: makes fixture store paths fresh
#   broken: names of this flake's packages whose evaluation throws
#   brokenSystems: names of example NixOS systems whose toplevel throws
{
  repo,
  drop ? [ ],
  nonce ? "",
  broken ? [ ],
  brokenSystems ? [ ],
}:
let
  lib = import ./lib.nix;
  system = "x86_64-linux";
  drv =
    name:
    builtins.derivation {
      inherit name system;
      builder = "/bin/sh";
      args = [
        "-c"
        "echo ${name} ${nonce} > $out"
      ];
    };
  scope = names: lib.mapAttrs' (n: _: lib.nameValuePair n (drv n)) (builtins.listToAttrs (map (n: lib.nameValuePair n null) names));
  python = drv "python3-intel" // {
    pkgs = scope [
      "ipex"
      "torch"
      "torchvision"
      "torchaudio"
      "spandrel"
      "einops"
      "invokeai"
    ];
    # As nixpkgs' python.withPackages: a buildEnv that keeps its members
    # in `paths`.
    withPackages =
      f:
      drv "python3-intel-env"
      // {
        paths = f python.pkgs ++ [ python ];
      };
  };
  full = {
    packages.${system} = scope [
      "intel-ccl"
      "intel-dnnl"
      "intel-mkl"
      "intel-mpi"
      "intel-tbb"
      "llama-cpp-sycl"
      "ollama-sycl"
      "stable-diffusion-cpp-sycl"
      "invokeai"
    ];
    legacyPackages.${system} = {
      intel-python = python;
      intel-dpcpp = scope [
        "llvm"
        "bintools-unwrapped"
        "bintools"
        "clang"
        "compiler-tools"
        "stdenv"
      ];
      intel-sycl = scope [
        "llvm"
        "clang"
        "stdenv"
      ];
      pti-gpu = scope [
        "onetrace"
        "sysmon"
        "sdk"
      ];
    };
  };

  # Removes one attribute path from a set.
  without =
    path: set:
    let
      h = builtins.head path;
    in
    if builtins.length path == 1 then
      builtins.removeAttrs set [ h ]
    else
      set // { ${h} = without (builtins.tail path) set.${h}; };
  mordrag-nixos = builtins.foldl' (s: p: without p s) full drop;

  overlay = import (repo + "/overlays") { inherit mordrag-nixos; };
  prev = {
    inherit lib;
    stdenv.hostPlatform.system = system;
    level-zero = drv "level-zero";
    intel-compute-runtime = drv "intel-compute-runtime";
  };
  pkgs = prev // overlay pkgs prev // {
    runCommandLocal =
      name: _env: script:
      builtins.derivation {
        inherit name system;
        builder = "/bin/sh";
        args = [
          "-c"
          script
        ];
      };
  };

  # This flake's outputs as the gates see them: the intel-xpu set as
  # packages, one of them throwing when named in `broken`.
  xpuNames = builtins.filter (n: n != "recurseForDerivations" && n != "sycl" && n != "pti-gpu") (
    builtins.attrNames pkgs.intel-xpu
  );
  self = {
    packages.${system} =
      lib.mapAttrs' (n: _: lib.nameValuePair "intel-${n}" pkgs.intel-xpu.${n}) (
        builtins.listToAttrs (map (n: lib.nameValuePair n null) xpuNames)
      )
      // builtins.listToAttrs (
        map (n: lib.nameValuePair n (throw "${n}: broken on purpose")) broken
      );
    devShells.${system}.default = drv "ipex-dev";
    # Stand-ins with the attributes the gates read; the aarch64 one is
    # not this system's and is left out.
    nixosConfigurations = {
      workstation = {
        pkgs.stdenv.hostPlatform.system = system;
        config.system.build.toplevel = drv "nixos-system-workstation";
      };
      other = {
        pkgs.stdenv.hostPlatform.system = "aarch64-linux";
        config.system.build.toplevel = throw "not this system";
      };
    }
    // builtins.listToAttrs (
      map (
        n:
        lib.nameValuePair n {
          pkgs.stdenv.hostPlatform.system = system;
          config.system.build.toplevel = throw "${n}: failed assertion on purpose";
        }
      ) brokenSystems
    );
  };
  checks = import (repo + "/nix/checks.nix") {
    inherit
      self
      pkgs
      lib
      system
      mordrag-nixos
      ;
    nixpkgs = throw "nixpkgs is not part of the offline harness";
    home-manager = throw "home-manager is not part of the offline harness";
  };
in
{
  inherit (checks) upstream-attrs eval-outputs;
  inherit mordrag-nixos;
  # name -> derivation name of every intel-xpu member the overlay reads
  # from upstream or nixpkgs.
  xpu = builtins.listToAttrs (map (n: lib.nameValuePair n pkgs.intel-xpu.${n}.name) xpuNames);
  dpcpp = pkgs.intel-xpu.dpcpp.name;
  reads = (import (repo + "/overlays/upstream.nix")).reads;
}
