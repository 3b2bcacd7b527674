// Package modules tests the parts of the NixOS modules that run or evaluate
// without nixpkgs: the pre-upgrade backup script (with rsync), the
// pure-builtins helpers of nix/lib.nix (with nix-instantiate), the alert
// rules (with promtool) and static checks over the module sources.
package modules
