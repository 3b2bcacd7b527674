{
  description = "Offline example for `ci build`: no inputs, /bin/sh builders, builds anywhere Nix runs";

  outputs =
    { self }:
    let
      system = "x86_64-linux";
      # A derivation whose builder is /bin/sh with shell builtins only: it
      # needs neither nixpkgs nor a network.
      mk =
        name: script: extra:
        builtins.derivation (
          {
            inherit name system;
            builder = "/bin/sh";
            args = [
              "-c"
              script
            ];
          }
          // extra
        );
      runtime = mk "ipex-offline-runtime" ''
        echo "runtime library of the offline example" > $out
      '' { };
    in
    {
      packages.${system} = {
        default = self.packages.${system}.hello;
        hello = mk "ipex-offline-hello" ''
          echo "hello from the offline example; runtime: $runtime" > $out
        '' { inherit runtime; };
        benchmark = mk "ipex-offline-benchmark" ''
          i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done
          echo "counted to $i using $runtime" > $out
        '' { inherit runtime; };
      };

      checks.${system}.hello-runs = mk "ipex-offline-check" ''
        read -r line < ${self.packages.${system}.hello}
        case "$line" in hello*) echo ok > $out ;; *) echo "unexpected: $line"; exit 1 ;; esac
      '' { };

      devShells.${system}.default = mk "ipex-offline-shell" ''
        echo "export IPEX_EXAMPLE=1" > $out
      '' { };

      formatter.${system} = mk "ipex-offline-formatter" ''
        echo "no-op formatter" > $out
      '' { };

      apps.${system}.hello = {
        type = "app";
        program = "${self.packages.${system}.hello}";
      };
    };
}
