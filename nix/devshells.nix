# Development shells: IPEX Python, oneAPI compilers and profiling tools.
{ pkgs, ... }:
{
  ipex-dev = pkgs.mkShell {
    name = "ipex-dev";
    packages = [
      pkgs.intel-xpu.python-env
      pkgs.intel-xpu.dpcpp
      pkgs.intel-xpu.level-zero
      pkgs.ipex-benchmarks
      pkgs.clinfo
      pkgs.intel-gpu-tools
      pkgs.linuxPackages.perf
      pkgs.nixfmt-rfc-style
      pkgs.vulnix
      pkgs.go
    ];
    env = {
      ZES_ENABLE_SYSMAN = "1";
      SYCL_CACHE_PERSISTENT = "1";
    };
    shellHook = ''
      echo "ipex-dev: python $(python --version 2>&1 | cut -d' ' -f2), sycl-ls lists devices, intel_gpu_top profiles the GPU"
    '';
  };
}

