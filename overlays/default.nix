# The IPEX overlay: the `intel-xpu` set taken from github:MordragT/nixos, the
# convenience aliases, and this flake's own packages.
#
# Upstream is read only through ./upstream.nix, which names for each
# attribute the flake output it lives in (`packages` or `legacyPackages`)
# and the upstream file that defines it.
{ mordrag-nixos }:
final: prev:
let
  inherit (final) lib;
  system = final.stdenv.hostPlatform.system;
  table = import ./upstream.nix;

  # upstream "dpcpp" is legacyPackages.<system>.intel-dpcpp.clang, or a throw
  # that names the attribute, its upstream file and the fix.
  upstream =
    name:
    let
      entry = table.reads.${name};
      path = [
        entry.output
        system
      ]
      ++ entry.path;
    in
    lib.attrByPath path (throw ''
      ipex-flake: github:MordragT/nixos has no ${lib.concatStringsSep "." path}
      (read from upstream's ${entry.file} at ${table.commit}).
      Pin an older mordrag-nixos in flake.lock (`nix flake lock --override-input`) or
      update overlays/upstream.nix to upstream's new name; docs/flake.md lists every read.
    '') mordrag-nixos;

  python = upstream "python";
in
{
  intel-xpu = lib.recurseIntoAttrs {
    # Python 3 with IPEX; `python.pkgs` is the whole package set.
    inherit python;
    python-env = python.withPackages (_: [
      final.intel-xpu.ipex
      final.intel-xpu.torch
      final.intel-xpu.torchvision
    ]);
    ipex = upstream "ipex";
    torch = upstream "torch";
    torchvision = upstream "torchvision";

    # oneAPI libraries.
    mkl = upstream "mkl";
    tbb = upstream "tbb";
    dnnl = upstream "dnnl";
    ccl = upstream "ccl";
    mpi = upstream "mpi";

    # Compilers: the wrapped DPC++ compiler (icx, icpx, dpcpp) and the
    # intel/llvm SYCL scope.
    dpcpp = upstream "dpcpp";
    sycl = upstream "sycl";
    pti-gpu = upstream "pti-gpu";

    # GPU runtime from nixpkgs.
    level-zero = final.level-zero;
    compute-runtime = final.intel-compute-runtime;

    # Applications.
    ollama = upstream "ollama";
    llama-cpp = upstream "llama-cpp";
    stable-diffusion-cpp = upstream "stable-diffusion-cpp";
    invokeai = upstream "invokeai";
  };

  ollama-ipex = final.intel-xpu.ollama;
  python-ipex = final.intel-xpu.python;
  invokeai-ipex = final.intel-xpu.invokeai;

  comfyui-ipex = final.callPackage ../pkgs/comfyui-ipex { python = final.intel-xpu.python; };
  ipex-benchmarks = final.callPackage ../pkgs/ipex-benchmarks { python = final.intel-xpu.python; };
  ipex-exporter = final.callPackage ../pkgs/ipex-exporter { };
  ipex-security-scan = final.callPackage ../pkgs/ipex-security-scan { };
}
