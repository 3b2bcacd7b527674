# All IPEX Home Manager modules.
{
  imports = [ ./ipex.nix ];
}
