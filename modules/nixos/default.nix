# All IPEX NixOS modules; the flake's nixosModules.default also adds the overlay.
{
  imports = [
    ./ipex.nix
    ./ollama-ipex.nix
    ./comfyui-ipex.nix
    ./monitoring.nix
    ./proxy.nix
    ./model-optimizer.nix
    ./auto-upgrade.nix
  ];
}
