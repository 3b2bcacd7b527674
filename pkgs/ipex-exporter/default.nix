# Prometheus exporter for the IPEX metrics (GPU utilisation, memory,
# inference latency, throughput, power, temperature), on prometheus_client.
{
  lib,
  stdenvNoCC,
  python3,
  makeWrapper,
}:
let
  python = python3.withPackages (ps: [ ps.prometheus-client ]);
in
stdenvNoCC.mkDerivation {
  pname = "ipex-exporter";
  version = "0.1.0";

  src = ./.;

  nativeBuildInputs = [ makeWrapper ];
  nativeCheckInputs = [ python ];

  dontBuild = true;
  doCheck = true;

  checkPhase = ''
    runHook preCheck
    python3 -m unittest -v test_ipex_exporter
    runHook postCheck
  '';

  installPhase = ''
    runHook preInstall
    install -Dm644 ipex_exporter.py $out/share/ipex-exporter/ipex_exporter.py
    makeWrapper ${python.interpreter} $out/bin/ipex-exporter \
      --add-flags "$out/share/ipex-exporter/ipex_exporter.py"
    runHook postInstall
  '';

  meta = {
    description = "Prometheus exporter for Intel GPU and IPEX service metrics";
    license = lib.licenses.mit;
    platforms = lib.platforms.linux;
    mainProgram = "ipex-exporter";
  };
}
