# Every attribute this flake reads from github:MordragT/nixos, with the
# upstream file that defines it. The overlay reads upstream only through this
# table, `checks.<system>.upstream-attrs` looks every entry up in the locked
# upstream and names the missing ones, and docs/flake.md lists them (a test
# compares the two).
#
# Upstream's flake (flake-parts, pkgs/default.nix) exports its by-name and
# overrides overlays as `packages.<system>` and its by-attr, by-lang and
# by-scope overlays as `legacyPackages.<system>`, each built from its own
# nixpkgs input, which flake.nix makes follow ours.
{
  # The upstream commit these entries were read from.
  commit = "6442b7e097c488af990b54cf5485dea1b4b778b4";
  commitDate = "2026-07-02";

  reads = {
    # The IPEX Python: python313 with upstream's packageOverrides.
    python = {
      output = "legacyPackages";
      path = [ "intel-python" ];
      file = "pkgs/by-lang/default.nix";
    };
    # Python packages upstream defines in that set (the others the
    # packages use, such as transformers or kornia, are nixpkgs' own).
    ipex = {
      output = "legacyPackages";
      path = [
        "intel-python"
        "pkgs"
        "ipex"
      ];
      file = "pkgs/by-lang/intel-python/default.nix";
    };
    torch = {
      output = "legacyPackages";
      path = [
        "intel-python"
        "pkgs"
        "torch"
      ];
      file = "pkgs/by-lang/intel-python/default.nix";
    };
    torchvision = {
      output = "legacyPackages";
      path = [
        "intel-python"
        "pkgs"
        "torchvision"
      ];
      file = "pkgs/by-lang/intel-python/default.nix";
    };
    torchaudio = {
      output = "legacyPackages";
      path = [
        "intel-python"
        "pkgs"
        "torchaudio"
      ];
      file = "pkgs/by-lang/intel-python/default.nix";
    };
    spandrel = {
      output = "legacyPackages";
      path = [
        "intel-python"
        "pkgs"
        "spandrel"
      ];
      file = "pkgs/by-lang/intel-python/default.nix";
    };
    einops = {
      output = "legacyPackages";
      path = [
        "intel-python"
        "pkgs"
        "einops"
      ];
      file = "pkgs/by-lang/intel-python/default.nix";
    };

    # oneAPI libraries.
    mkl = {
      output = "packages";
      path = [ "intel-mkl" ];
      file = "pkgs/by-name/default.nix";
    };
    tbb = {
      output = "packages";
      path = [ "intel-tbb" ];
      file = "pkgs/by-name/default.nix";
    };
    dnnl = {
      output = "packages";
      path = [ "intel-dnnl" ];
      file = "pkgs/by-name/default.nix";
    };
    ccl = {
      output = "packages";
      path = [ "intel-ccl" ];
      file = "pkgs/by-name/default.nix";
    };
    mpi = {
      output = "packages";
      path = [ "intel-mpi" ];
      file = "pkgs/by-name/default.nix";
    };

    # Compilers. The intel-dpcpp scope's `clang` is the wrapped oneAPI
    # DPC++/C++ compiler (icx, icpx, dpcpp); the scope has had no `dpcpp`
    # attribute since 2024.
    dpcpp = {
      output = "legacyPackages";
      path = [
        "intel-dpcpp"
        "clang"
      ];
      file = "pkgs/by-scope/intel-dpcpp/default.nix";
    };
    sycl = {
      output = "legacyPackages";
      path = [ "intel-sycl" ];
      file = "pkgs/by-scope/default.nix";
    };
    pti-gpu = {
      output = "legacyPackages";
      path = [ "pti-gpu" ];
      file = "pkgs/by-scope/default.nix";
    };

    # Applications.
    ollama = {
      output = "packages";
      path = [ "ollama-sycl" ];
      file = "pkgs/by-name/default.nix";
    };
    llama-cpp = {
      output = "packages";
      path = [ "llama-cpp-sycl" ];
      file = "pkgs/by-name/default.nix";
    };
    stable-diffusion-cpp = {
      output = "packages";
      path = [ "stable-diffusion-cpp-sycl" ];
      file = "pkgs/by-name/default.nix";
    };
    invokeai = {
      output = "packages";
      path = [ "invokeai" ];
      file = "pkgs/overrides/default.nix";
    };
  };
}
