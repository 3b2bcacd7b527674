# Example nixosConfigurations that use the modules; `nix flake check`
# evaluates each of them (checks.<system>.eval-<name>).
{ nixpkgs, self }:
let
  mkSystem =
    modules:
    nixpkgs.lib.nixosSystem {
      system = "x86_64-linux";
      modules = [
        self.nixosModules.default
        ./nixos-common.nix
      ]
      ++ modules;
    };
in
{
  # An Arc workstation running both services locally.
  workstation = mkSystem [ ./nixos-workstation.nix ];
  # A headless server: proxy, monitoring, optimizer and auto-upgrades.
  server = mkSystem [ ./nixos-server.nix ];
}
