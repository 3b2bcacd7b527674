# ComfyUI on the IPEX torch, CPU fallback, next to Ollama with the model
# optimizer: /system_stats answers, each service owns its compilation
# caches (no directory is shared or world-writable) and can write them, and
# the unit's `systemd-analyze security` exposure is at most 2.0.
{
  self,
  pkgs,
  lib,
}:
let
  threshold = toString self.lib.securityThreshold;
  # Each service's caches (DynamicUser keeps them under /var/cache/private).
  caches = {
    ollama-ipex = [ "/var/cache/ollama-ipex/sycl" ];
    comfyui-ipex = [
      "/var/cache/comfyui-ipex/sycl"
      "/var/cache/comfyui-ipex/inductor"
    ];
  };
in
pkgs.testers.runNixOSTest {
  name = "ipex-comfyui";
  nodes.machine = {
    # The modules without the overlay: runNixOSTest hands the nodes its
    # (read-only) pkgs, which already has the overlay, and rejects any
    # nixpkgs.overlays definition such as nixosModules.default's.
    imports = [ ../../modules/nixos ];
    virtualisation.memorySize = 8192;
    virtualisation.cores = 2;
    services.ipex.devices = [ "cpu" ];
    services.comfyui-ipex = {
      enable = true;
      cpu = true;
      resources.memoryMax = "5G";
    };
    services.ollama-ipex = {
      enable = true;
      resources.memoryMax = "2G";
    };
    services.ipex-model-optimizer.enable = true;
  };
  testScript = ''
    machine.wait_for_unit("comfyui-ipex.service")
    machine.wait_for_unit("ollama-ipex.service")
    machine.wait_for_open_port(8188, timeout=600)
    machine.wait_for_open_port(11434)
    out = machine.succeed("curl -fsS http://127.0.0.1:8188/system_stats")
    assert '"devices"' in out, out

    caches = ${builtins.toJSON caches}
    with subtest("each service owns and writes its own caches"):
        for service, dirs in caches.items():
            for d in dirs:
                owner, mode = machine.succeed(f"stat -L -c '%U %a' {d}").split()
                assert owner == service, f"{d} belongs to {owner}, not {service}"
                assert int(mode, 8) & 0o022 == 0, f"{d} is writable by others: {mode}"
                # A transient unit with the same dynamic user writes there, as the service does.
                cache = d.removeprefix("/var/cache/")
                machine.succeed(
                    f"systemd-run --wait --pipe -p DynamicUser=yes -p User={service} "
                    + f"-p CacheDirectory={cache} touch {d}/write-probe"
                )
                machine.succeed(f"test -f {d}/write-probe")
        env = machine.succeed("systemctl show -p Environment comfyui-ipex.service")
        assert "TORCHINDUCTOR_CACHE_DIR=/var/cache/comfyui-ipex/inductor" in env, env
        assert "SYCL_CACHE_PERSISTENT=1" in env, env

    with subtest("no world-writable directory in the services' state and caches"):
        found = machine.succeed(
            "find /var/lib/private /var/cache/private /var/cache/ollama-ipex/ /var/cache/comfyui-ipex/ "
            + "-xdev -perm -o+w ! -type l -print"
        ).strip()
        assert found == "", found

    machine.succeed("systemd-analyze security --threshold=${threshold} comfyui-ipex.service")
  '';
}
