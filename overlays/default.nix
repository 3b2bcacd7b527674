# The IPEX overlay: the `intel-xpu` set taken from github:MordragT/nixos, the
# convenience aliases, and this flake's own packages.
#
# Upstream keeps its plain packages in `packages.<system>` and its scopes
# (intel-python, intel-dpcpp, intel-sycl, pti-gpu) in `legacyPackages.<system>`.
{ mordrag-nixos }:
final: prev:
let
  inherit (final) lib;
  system = final.stdenv.hostPlatform.system;

  fromUpstream =
    output: name:
    mordrag-nixos.${output}.${system}.${name} or (throw ''
      ipex-flake: github:MordragT/nixos has no ${output}.${system}.${name}.
      Run `nix flake update mordrag-nixos` or pin an older revision in flake.lock;
      docs/flake.md lists the attributes this overlay reads.
    '');
  upstream = fromUpstream "packages";
  upstreamLegacy = fromUpstream "legacyPackages";

  python = upstreamLegacy "intel-python";
in
{
  intel-xpu = lib.recurseIntoAttrs {
    # Python 3 with IPEX; `python.pkgs` is the whole package set.
    inherit python;
    python-env = python.withPackages (ps: [
      ps.ipex
      ps.torch
      ps.torchvision
    ]);
    ipex = python.pkgs.ipex;
    torch = python.pkgs.torch;
    torchvision = python.pkgs.torchvision;

    # oneAPI libraries.
    mkl = upstream "intel-mkl";
    tbb = upstream "intel-tbb";
    dnnl = upstream "intel-dnnl";
    ccl = upstream "intel-ccl";
    mpi = upstream "intel-mpi";

    # Compilers: the DPC++ wrapper and the intel/llvm SYCL scope.
    dpcpp = (upstreamLegacy "intel-dpcpp").dpcpp;
    sycl = upstreamLegacy "intel-sycl";
    pti-gpu = upstreamLegacy "pti-gpu";

    # GPU runtime from nixpkgs.
    level-zero = final.level-zero;
    compute-runtime = final.intel-compute-runtime;

    # Applications.
    ollama = upstream "ollama-sycl";
    llama-cpp = upstream "llama-cpp-sycl";
    stable-diffusion-cpp = upstream "stable-diffusion-cpp-sycl";
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
