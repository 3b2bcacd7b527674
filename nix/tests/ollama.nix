# Ollama (SYCL build) on the CPU fallback: hardware detection again when a
# render node appears late, the API, one tiny inference with a model made
# offline, models outside the state directory, the tuning options, and the
# unit's `systemd-analyze security` exposure of at most 2.0.
{
  self,
  pkgs,
  lib,
}:
let
  threshold = toString self.lib.securityThreshold;
  # A tiny random-weight llama GGUF, written at build time by a script that
  # needs only the Python standard library, so the inference needs no network.
  tinyModel = pkgs.runCommand "ipex-vm-test-tiny.gguf" { } ''
    ${pkgs.python3.interpreter} ${./tiny-gguf.py} $out
  '';
  modelfile = pkgs.writeText "Modelfile" "FROM ${tinyModel}\n";
in
pkgs.testers.runNixOSTest {
  name = "ipex-ollama";
  nodes.machine = {
    # The modules without the overlay: runNixOSTest hands the nodes its
    # (read-only) pkgs, which already has the overlay, and rejects any
    # nixpkgs.overlays definition such as nixosModules.default's.
    imports = [ ../../modules/nixos ];
    virtualisation.memorySize = 4096;
    # A non-Intel GPU (virtio): a DRM card and render node that detection
    # must not take for an Intel GPU; udev announces it like a late device.
    virtualisation.qemu.options = [ "-device virtio-gpu-pci" ];
    # "gpu" is wanted, none is usable: the CPU fallback.
    services.ipex.devices = [
      "gpu"
      "cpu"
    ];
    services.ollama-ipex = {
      enable = true;
      resources.memoryMax = "3G";
      # Outside the state directory (and a prefix look-alike of it).
      models = "/var/lib/ollama-ipex2/models";
      numParallel = 4;
      keepAlive = "10m";
    };
  };
  testScript = ''
    import json

    machine.wait_for_file("/run/ipex/hardware.env")
    env = machine.succeed("cat /run/ipex/hardware.env")
    assert "IPEX_CPU_FALLBACK=1" in env, env
    assert "opencl:cpu" not in env, "no OpenCL CPU runtime is installed: " + env
    machine.wait_for_unit("ollama-ipex.service")
    machine.wait_for_open_port(11434)

    with subtest("the tuning options reach Ollama"):
        pid = machine.succeed("systemctl show -p MainPID --value ollama-ipex.service").strip()
        environ = machine.succeed(f"tr '\\0' '\\n' < /proc/{pid}/environ")
        for want in ["OLLAMA_NUM_PARALLEL=4", "OLLAMA_MAX_QUEUE=512", "OLLAMA_KEEP_ALIVE=10m", "OLLAMA_MODELS=/var/lib/ollama-ipex/models"]:
            assert want in environ, f"{want} missing from {environ}"

    with subtest("a render node appearing later runs the detection again"):
        before = machine.succeed("systemctl show -p InvocationID --value ipex-hardware-detect.service").strip()
        ollama_before = machine.succeed("systemctl show -p InvocationID --value ollama-ipex.service").strip()
        # Pretend the last detection found a GPU: the new result differs, so
        # the services are restarted onto it.
        machine.succeed("sed -i 's/^ONEAPI_DEVICE_SELECTOR=.*/ONEAPI_DEVICE_SELECTOR=level_zero:gpu/; /IPEX_CPU_FALLBACK/d' /run/ipex/hardware.env")
        machine.succeed("udevadm trigger --action=add --subsystem-match=drm --sysname-match='renderD*' && udevadm settle")
        machine.wait_until_succeeds(
            f"test \"$(systemctl show -p InvocationID --value ipex-hardware-detect.service)\" != '{before}'"
        )
        machine.wait_until_succeeds("grep -q IPEX_CPU_FALLBACK=1 /run/ipex/hardware.env")
        machine.wait_until_succeeds(
            f"test \"$(systemctl show -p InvocationID --value ollama-ipex.service)\" != '{ollama_before}'"
        )
        machine.wait_for_unit("ollama-ipex.service")
        machine.wait_for_open_port(11434)

    out = machine.succeed("curl -fsS http://127.0.0.1:11434/api/tags")
    assert '"models"' in out, out

    with subtest("one tiny inference, model stored outside the state directory"):
        machine.succeed("OLLAMA_HOST=127.0.0.1:11434 ollama create tiny -f ${modelfile}")
        machine.succeed("test -n \"$(ls -A /var/lib/ollama-ipex2/models/blobs)\"")
        resp = json.loads(machine.succeed(
            "curl -fsS http://127.0.0.1:11434/api/generate "
            + "-d '{\"model\": \"tiny\", \"prompt\": \"hi\", \"stream\": false, \"options\": {\"num_predict\": 4, \"temperature\": 0}}'"
        ))
        assert resp.get("done") is True, resp
        # Random weights: the text is noise, the token count is the point.
        assert resp.get("eval_count", 0) > 0, resp

    machine.succeed("systemd-analyze security --threshold=${threshold} ollama-ipex.service")
    machine.succeed("systemctl show ollama-ipex.service -p DynamicUser | grep -q yes")
  '';
}
