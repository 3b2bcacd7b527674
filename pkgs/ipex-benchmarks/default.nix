# The sample IPEX workloads (matmul, conv2d, ipex.optimize) as one command
# that prints JSON timings; `--quick` is the smoke test the VM checks run.
{
  lib,
  stdenvNoCC,
  makeWrapper,
  python,
}:
let
  pythonEnv = python.withPackages (ps: [
    ps.ipex
    ps.torch
    ps.torchvision
  ]);
in
stdenvNoCC.mkDerivation {
  pname = "ipex-benchmarks";
  version = "0.1.0";

  src = ./.;

  nativeBuildInputs = [ makeWrapper ];

  dontBuild = true;

  installPhase = ''
    runHook preInstall
    install -Dm644 ipex_benchmarks.py $out/share/ipex-benchmarks/ipex_benchmarks.py
    makeWrapper ${pythonEnv}/bin/python $out/bin/ipex-benchmarks \
      --add-flags "$out/share/ipex-benchmarks/ipex_benchmarks.py"
    runHook postInstall
  '';

  meta = {
    description = "Sample IPEX workloads with JSON timings";
    license = lib.licenses.mit;
    platforms = [ "x86_64-linux" ];
    mainProgram = "ipex-benchmarks";
  };
}
