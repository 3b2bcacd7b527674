# A stand-in for the few nixpkgs lib functions overlays/default.nix and
# nix/checks.nix use, with nixpkgs' semantics (lib/attrsets.nix,
# lib/strings.nix, lib/lists.nix): nixpkgs cannot be fetched in the tests.
let
  lib = {
    inherit (builtins)
      attrNames
      attrValues
      mapAttrs
      filter
      concatStringsSep
      ;
    concatMapStrings = f: l: builtins.concatStringsSep "" (map f l);
    nameValuePair = name: value: { inherit name value; };
    mapAttrs' = f: set: builtins.listToAttrs (map (n: f n set.${n}) (builtins.attrNames set));
    filterAttrs =
      pred: set: builtins.removeAttrs set (builtins.filter (n: !pred n set.${n}) (builtins.attrNames set));
    attrByPath =
      path: default: set:
      if path == [ ] then
        set
      else if builtins.isAttrs set && set ? ${builtins.head path} then
        lib.attrByPath (builtins.tail path) default set.${builtins.head path}
      else
        default;
    hasAttrByPath =
      path: set:
      path == [ ]
      || (
        builtins.isAttrs set
        && set ? ${builtins.head path}
        && lib.hasAttrByPath (builtins.tail path) set.${builtins.head path}
      );
    escapeShellArg = arg: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString arg)}'";
    recurseIntoAttrs = a: a // { recurseForDerivations = true; };
    optional = c: x: if c then [ x ] else [ ];
  };
in
lib
