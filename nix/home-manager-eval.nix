# Evaluates the Home Manager module against the Home Manager options it
# uses (declared here loosely), since home-manager is not a flake input.
{
  self,
  pkgs,
  lib,
}:
let
  stubs =
    { lib, ... }:
    {
      options = {
        home.packages = lib.mkOption { type = lib.types.listOf lib.types.package; };
        home.sessionVariables = lib.mkOption { type = lib.types.attrsOf lib.types.str; };
        xdg.configFile = lib.mkOption { type = lib.types.attrsOf lib.types.anything; };
        systemd.user.services = lib.mkOption { type = lib.types.attrsOf lib.types.anything; };
      };
    };
  eval = lib.evalModules {
    specialArgs = { inherit pkgs; };
    modules = [
      stubs
      self.homeManagerModules.default
      {
        programs.ipex = {
          enable = true;
          ollama.enable = true;
          comfyui.enable = true;
        };
      }
    ];
  };
in
pkgs.writeText "eval-home-manager.json" (
  builtins.toJSON {
    services = lib.attrNames eval.config.systemd.user.services;
    variables = eval.config.home.sessionVariables;
    packages = map (p: p.name) eval.config.home.packages;
  }
)
