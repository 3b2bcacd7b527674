# packages.<system>: everything the overlay adds, as buildable derivations, so
# CI builds the Python stack that upstream keeps in legacyPackages.
{ pkgs, ... }:
let
  xpu = pkgs.intel-xpu;
in
{
  inherit (pkgs)
    ollama-ipex
    python-ipex
    invokeai-ipex
    comfyui-ipex
    ipex-benchmarks
    ipex-exporter
    ipex-security-scan
    ;

  intel-ipex = xpu.ipex;
  intel-torch = xpu.torch;
  intel-torchvision = xpu.torchvision;
  intel-python-env = xpu.python-env;
  intel-mkl = xpu.mkl;
  intel-tbb = xpu.tbb;
  intel-dnnl = xpu.dnnl;
  intel-ccl = xpu.ccl;
  intel-dpcpp = xpu.dpcpp;
  intel-level-zero = xpu.level-zero;
  intel-compute-runtime = xpu.compute-runtime;
  llama-cpp-ipex = xpu.llama-cpp;
  stable-diffusion-cpp-ipex = xpu.stable-diffusion-cpp;

  default = pkgs.ollama-ipex;
}
