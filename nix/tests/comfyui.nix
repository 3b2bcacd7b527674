# ComfyUI on the IPEX torch, CPU fallback: /system_stats answers and the
# unit's `systemd-analyze security` exposure is at most 2.0.
{
  self,
  pkgs,
  lib,
}:
let
  threshold = toString self.lib.securityThreshold;
in
pkgs.testers.runNixOSTest {
  name = "ipex-comfyui";
  nodes.machine = {
    # The modules without the overlay: runNixOSTest hands the nodes its
    # (read-only) pkgs, which already has the overlay, and rejects any
    # nixpkgs.overlays definition such as nixosModules.default's.
    imports = [ ../../modules/nixos ];
    virtualisation.memorySize = 6144;
    virtualisation.cores = 2;
    services.ipex.devices = [ "cpu" ];
    services.comfyui-ipex = {
      enable = true;
      cpu = true;
      resources.memoryMax = "5G";
    };
  };
  testScript = ''
    machine.wait_for_unit("comfyui-ipex.service")
    machine.wait_for_open_port(8188, timeout=600)
    out = machine.succeed("curl -fsS http://127.0.0.1:8188/system_stats")
    assert '"devices"' in out, out
    machine.succeed("systemd-analyze security --threshold=${threshold} comfyui-ipex.service")
  '';
}
