# Ollama (SYCL build) on the CPU fallback: the API answers and the unit's
# `systemd-analyze security` exposure is at most 2.0.
{
  self,
  pkgs,
  lib,
}:
let
  threshold = toString self.lib.securityThreshold;
in
pkgs.testers.runNixOSTest {
  name = "ipex-ollama";
  nodes.machine = {
    # The modules without the overlay: runNixOSTest hands the nodes its
    # (read-only) pkgs, which already has the overlay, and rejects any
    # nixpkgs.overlays definition such as nixosModules.default's.
    imports = [ ../../modules/nixos ];
    virtualisation.memorySize = 4096;
    services.ipex.devices = [ "cpu" ];
    services.ollama-ipex = {
      enable = true;
      resources.memoryMax = "3G";
    };
  };
  testScript = ''
    machine.wait_for_unit("ipex-hardware-detect.service")
    machine.succeed("grep -q IPEX_CPU_FALLBACK=1 /run/ipex/hardware.env")
    machine.wait_for_unit("ollama-ipex.service")
    machine.wait_for_open_port(11434)
    out = machine.succeed("curl -fsS http://127.0.0.1:11434/api/tags")
    assert '"models"' in out, out
    machine.succeed("systemd-analyze security --threshold=${threshold} ollama-ipex.service")
    machine.succeed("systemctl show ollama-ipex.service -p DynamicUser | grep -q yes")
  '';
}
