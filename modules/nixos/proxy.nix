# services.ipex.proxy: nginx in front of Ollama and ComfyUI, with upstream
# groups so more instances can be added for scaling.
{
  config,
  lib,
  ...
}:
let
  cfg = config.services.ipex.proxy;
  ollama = config.services.ollama-ipex or { enable = false; };
  comfyui = config.services.comfyui-ipex or { enable = false; };
  local = host: if host == "0.0.0.0" then "127.0.0.1" else host;
in
{
  options.services.ipex.proxy = {
    enable = lib.mkEnableOption "the nginx reverse proxy for the IPEX services";

    serverName = lib.mkOption {
      type = lib.types.str;
      default = "ai-services.local";
      description = "Virtual host name.";
    };

    basicAuthFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      example = "/run/secrets/ipex-htpasswd";
      description = ''
        htpasswd file protecting both services. Give a path outside the Nix
        store (it holds password hashes); nginx reads it at run time.
      '';
    };

    ollamaServers = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = lib.optional ollama.enable "${local ollama.host}:${toString ollama.port}";
      defaultText = lib.literalExpression ''[ "127.0.0.1:11434" ]'';
      description = "host:port entries of the ollama-backend upstream.";
    };

    comfyuiServers = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = lib.optional comfyui.enable "${local comfyui.host}:${toString comfyui.port}";
      defaultText = lib.literalExpression ''[ "127.0.0.1:8188" ]'';
      description = "host:port entries of the comfyui-backend upstream.";
    };

    virtualHost = lib.mkOption {
      type = lib.types.attrsOf lib.types.anything;
      default = { };
      example = lib.literalExpression ''{ forceSSL = true; enableACME = true; }'';
      description = "Extra attributes merged into the nginx virtual host (TLS, listen addresses).";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.ollamaServers != [ ] || cfg.comfyuiServers != [ ];
        message = ''
          services.ipex.proxy is enabled but has no upstream: enable services.ollama-ipex or
          services.comfyui-ipex, or list servers in services.ipex.proxy.ollamaServers / comfyuiServers.
        '';
      }
    ];

    services.nginx = {
      enable = true;
      recommendedProxySettings = true;
      recommendedOptimisation = true;

      upstreams = lib.mkMerge [
        (lib.mkIf (cfg.ollamaServers != [ ]) {
          ollama-backend.servers = lib.genAttrs cfg.ollamaServers (_: { });
        })
        (lib.mkIf (cfg.comfyuiServers != [ ]) {
          comfyui-backend.servers = lib.genAttrs cfg.comfyuiServers (_: { });
        })
      ];

      virtualHosts.${cfg.serverName} = lib.mkMerge [
        {
          basicAuthFile = cfg.basicAuthFile;
          locations = lib.mkMerge [
            (lib.mkIf (cfg.ollamaServers != [ ]) {
              "/ollama/" = {
                proxyPass = "http://ollama-backend/";
                extraConfig = ''
                  proxy_buffering off;
                  proxy_request_buffering off;
                  proxy_read_timeout 600s;
                '';
              };
            })
            (lib.mkIf (cfg.comfyuiServers != [ ]) {
              "/comfyui/" = {
                proxyPass = "http://comfyui-backend/";
                proxyWebsockets = true;
                extraConfig = ''
                  client_max_body_size 100M;
                  proxy_read_timeout 300s;
                '';
              };
            })
          ];
        }
        cfg.virtualHost
      ];
    };
  };
}
