# Evaluates homeManagerModules in the real Home Manager module system
# (the `home-manager` input, used by the checks only): every Home Manager
# option the module sets is declared and type-checked by Home Manager
# itself, and its assertions run. Nothing is built but the report.
#
# - standalone: a nixpkgs without the IPEX overlay (a plain Home Manager
#   configuration); the module must bring the overlay itself.
# - global: a nixpkgs that has the overlay (home-manager.useGlobalPkgs on a
#   system with nixosModules.default); the module uses it as is.
# - both: homeManagerModules.default and .ipex imported together.
# - bare: modules/home-manager/ipex.nix alone on a plain nixpkgs; its
#   assertion (naming overlays.default) must stop the evaluation.
{
  self,
  pkgs,
  lib,
  system,
  nixpkgs,
  home-manager,
  gate,
}:
let
  plainPkgs = import nixpkgs {
    inherit system;
    config.allowUnfree = true;
  };

  home =
    hmPkgs: modules:
    home-manager.lib.homeManagerConfiguration {
      pkgs = hmPkgs;
      modules = [
        {
          home = {
            username = "ipex";
            homeDirectory = "/home/ipex";
            stateVersion = "25.11";
          };
          programs.ipex = {
            enable = true;
            ollama.enable = true;
            comfyui.enable = true;
          };
        }
      ]
      ++ modules;
    };

  standalone = home plainPkgs [ self.homeManagerModules.default ];
  global = home pkgs [ self.homeManagerModules.default ];
  both = home plainPkgs [
    self.homeManagerModules.default
    self.homeManagerModules.ipex
  ];
  bare = home plainPkgs [ ../modules/home-manager/ipex.nix ];

  evaluates = hm: (builtins.tryEval (builtins.unsafeDiscardStringContext hm.activationPackage.drvPath)).success;
  outPath = p: builtins.unsafeDiscardStringContext p.outPath;
  ours = self.packages.${system};

  # The Python environment's members (buildEnv keeps them as `paths`).
  envMembers = env: map outPath (env.paths or [ ]);
  cfg = standalone.config;

  failures =
    lib.optional (!evaluates standalone) "standalone: the activation package does not evaluate on a nixpkgs without the overlay"
    ++ lib.optional (!evaluates global) "global: the activation package does not evaluate on a nixpkgs with the overlay"
    ++ lib.optional (!evaluates both) "both: importing homeManagerModules.default and .ipex together does not evaluate"
    ++ lib.optional (evaluates bare) "bare: modules/home-manager/ipex.nix without the overlay evaluated; its assertion should have stopped it"
    ++ lib.optionals (evaluates standalone) (
      lib.optional (
        !lib.elem (outPath ours.intel-ipex) (envMembers cfg.programs.ipex.package)
      ) "programs.ipex.package does not contain ipex"
      ++ lib.optional (
        !lib.elem (outPath ours.intel-torch) (envMembers cfg.programs.ipex.package)
      ) "programs.ipex.package does not contain torch"
      ++ lib.optional (
        !lib.elem (outPath ours.ollama-ipex) (map outPath cfg.home.packages)
      ) "home.packages lacks ollama-ipex"
      ++ lib.optional (
        !(cfg.systemd.user.services ? comfyui-ipex)
      ) "systemd.user.services lacks comfyui-ipex"
      ++ lib.optional (
        (cfg.home.sessionVariables.OLLAMA_HOST or null) != "http://127.0.0.1:11434"
      ) "home.sessionVariables.OLLAMA_HOST is not the default host"
    )
    ++ lib.optional (
      evaluates global && outPath global.config.programs.ipex.package != outPath pkgs.intel-xpu.python-env
    ) "global: programs.ipex.package is not pkgs.intel-xpu.python-env";
in
gate "eval-home-manager" failures (
  lib.optionalAttrs (failures == [ ]) {
    activationPackage = builtins.unsafeDiscardStringContext standalone.activationPackage.drvPath;
    services = lib.attrNames cfg.systemd.user.services;
    variables = cfg.home.sessionVariables;
    packages = map (p: p.name) cfg.home.packages;
    python = map (p: p.name) cfg.programs.ipex.package.paths;
  }
)
