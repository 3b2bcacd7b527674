{
  description = "IPEX-enabled AI software for Intel XPUs: Ollama, ComfyUI, InvokeAI and an IPEX Python, with hardened NixOS and Home Manager modules";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    mordrag-nixos = {
      url = "github:MordragT/nixos";
      inputs = {
        nixpkgs.follows = "nixpkgs";
        # The inputs of github:MordragT/nixos that bring a nixpkgs of their
        # own (names as in its flake.nix; docs/flake.md names the commit
        # read) follow the mordrag-* inputs below, whose nixpkgs follows
        # ours. Every other input of it already follows its nixpkgs, which
        # follows ours: the lock has one nixpkgs node.
        vaultix.follows = "mordrag-vaultix";
        nixos-anywhere.follows = "mordrag-nixos-anywhere";
        templates.follows = "mordrag-templates";
      };
    };
    # Upstream's own inputs, declared here only to make their nixpkgs follow
    # ours. A deeper override (mordrag-nixos.inputs.vaultix.inputs.nixpkgs.follows)
    # needs a Nix with NixOS/nix#13400 (mid 2025): older releases read
    # `vaultix` there as a registry flake ("cannot find flake 'flake:vaultix'")
    # or ignore the override. One level of follows works with every Nix.
    mordrag-vaultix = {
      url = "github:milieuim/vaultix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    mordrag-nixos-anywhere = {
      url = "github:nix-community/nixos-anywhere";
      inputs = {
        nixpkgs.follows = "nixpkgs";
        # nixos-anywhere's NixOS-stable pin, used by its installer images only.
        nixos-stable.follows = "nixpkgs";
        # As upstream's flake.nix declares it.
        disko.follows = "mordrag-nixos/disko";
      };
    };
    # nix-templates takes `nixpkgs` as an outputs argument only (an
    # implicit registry input).
    mordrag-templates = {
      url = "github:MordragT/nix-templates";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    # Test-only: read by `checks` alone (nix/home-manager-eval.nix evaluates
    # homeManagerModules.default in the real Home Manager module system).
    # Flakes have no test-only inputs; a consumer that imports
    # homeManagerModules only never evaluates it, and may point it at its
    # own copy with `inputs.ipex-flake.inputs.home-manager.follows`.
    home-manager = {
      url = "github:nix-community/home-manager";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      mordrag-nixos,
      home-manager,
      ...
    }:
    let
      inherit (nixpkgs) lib;

      # Intel XPU builds exist upstream for x86_64-linux only; keep it first so
      # tools that pick "the first system" pick the one that works.
      systems = [ "x86_64-linux" ];
      forAllSystems = lib.genAttrs systems;

      pkgsFor =
        system:
        import nixpkgs {
          inherit system;
          # MKL, TBB, oneCCL and the DPC++ runtime are under Intel's licences.
          config.allowUnfree = true;
          overlays = [ self.overlays.default ];
        };

      ipexLib = import ./nix/lib.nix { inherit lib; };
    in
    {
      lib = ipexLib;

      overlays.default = import ./overlays { inherit mordrag-nixos; };

      packages = forAllSystems (
        system:
        let
          pkgs = pkgsFor system;
        in
        import ./pkgs { inherit pkgs lib; }
      );

      legacyPackages = forAllSystems (system: {
        # The whole IPEX Python package set (python-ipex.pkgs.*) for `nix build .#legacyPackages...`.
        inherit (pkgsFor system) intel-xpu;
      });

      devShells = forAllSystems (
        system:
        let
          pkgs = pkgsFor system;
          shells = import ./nix/devshells.nix { inherit pkgs lib; };
        in
        {
          default = shells.ipex-dev;
          inherit (shells) ipex-dev;
        }
      );

      formatter = forAllSystems (system: (pkgsFor system).nixfmt-rfc-style);

      # Each module is imported by path, never as `import ./file.nix`: the
      # modules import each other (ollama-ipex imports ipex.nix, …) and the
      # module system only de-duplicates path imports. A module imported as a
      # value next to the same file imported by path declares its options
      # twice ("option … is already declared").
      nixosModules = {
        ipex.imports = [ ./modules/nixos/ipex.nix ];
        ollama-ipex.imports = [ ./modules/nixos/ollama-ipex.nix ];
        comfyui-ipex.imports = [ ./modules/nixos/comfyui-ipex.nix ];
        monitoring.imports = [ ./modules/nixos/monitoring.nix ];
        proxy.imports = [ ./modules/nixos/proxy.nix ];
        model-optimizer.imports = [ ./modules/nixos/model-optimizer.nix ];
        auto-upgrade.imports = [ ./modules/nixos/auto-upgrade.nix ];
        # Everything above, plus the overlay so pkgs.ollama-ipex & co. resolve.
        default = {
          imports = [ ./modules/nixos ];
          nixpkgs.overlays = [ self.overlays.default ];
        };
      };

      # Both carry the overlay as programs.ipex.overlay, so the module works
      # with a nixpkgs that lacks it (see modules/home-manager/ipex.nix). The
      # `key` makes the module system keep one copy when both are imported.
      homeManagerModules =
        let
          overlay = {
            key = "ipex-flake#homeManagerModules.overlay";
            programs.ipex.overlay = self.overlays.default;
          };
        in
        {
          ipex.imports = [
            ./modules/home-manager/ipex.nix
            overlay
          ];
          default.imports = [
            ./modules/home-manager
            overlay
          ];
        };

      nixosConfigurations = import ./examples/nixos-configurations.nix {
        inherit nixpkgs self;
      };

      checks = forAllSystems (
        system:
        import ./nix/checks.nix {
          inherit
            self
            lib
            system
            nixpkgs
            mordrag-nixos
            home-manager
            ;
          pkgs = pkgsFor system;
        }
      );

      apps = forAllSystems (system: {
        security-scan = {
          type = "app";
          program = lib.getExe self.packages.${system}.ipex-security-scan;
          meta.description = "Scan the flake's closure with vulnix and audit flake.lock";
        };
        benchmarks = {
          type = "app";
          program = lib.getExe self.packages.${system}.ipex-benchmarks;
          meta.description = "Run the IPEX sample workloads and print timings as JSON";
        };
        default = self.apps.${system}.security-scan;
      });
    };
}
