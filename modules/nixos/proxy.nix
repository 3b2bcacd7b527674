# services.ipex.proxy: nginx in front of Ollama and ComfyUI, with upstream
# groups so more instances can be added for scaling, HTTP basic
# authentication and TLS (own certificate or ACME).
{
  config,
  lib,
  ...
}:
let
  cfg = config.services.ipex.proxy;
  ipexLib = import ../../nix/lib.nix { inherit lib; };
  ollama = config.services.ollama-ipex or { enable = false; };
  comfyui = config.services.comfyui-ipex or { enable = false; };
  local = ipexLib.localAddress;
  tls = cfg.forceSSL || cfg.enableACME || cfg.sslCertificate != null;
  # Services of this machine that listen on every interface.
  wildcardServices =
    lib.optional (ollama.enable && ipexLib.isWildcardAddress ollama.host) "services.ollama-ipex.host = \"${ollama.host}\""
    ++ lib.optional (comfyui.enable && ipexLib.isWildcardAddress comfyui.host) "services.comfyui-ipex.host = \"${comfyui.host}\"";
  loopback =
    a:
    lib.elem a [
      "127.0.0.1"
      "::1"
      "[::1]"
      "localhost"
    ];
  # nginx listens on every interface unless listenAddresses says otherwise.
  proxyReachable = cfg.listenAddresses == [ ] || !lib.all loopback cfg.listenAddresses;
  exposed = wildcardServices ++ lib.optional proxyReachable "the proxy itself (listenAddresses = ${
    if cfg.listenAddresses == [ ] then "every interface" else lib.concatStringsSep ", " cfg.listenAddresses
  })";
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
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/run/secrets/ipex-htpasswd";
      description = ''
        htpasswd file protecting both services. Give a path outside the Nix
        store (it holds password hashes); nginx reads it at run time.
        Required whenever the proxy or a service behind it is reachable
        from other machines, unless allowUnauthenticated is set.
      '';
    };

    allowUnauthenticated = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Confirm that the services may be reached through a proxy that
        listens beyond loopback (or with services on a wildcard address)
        without basicAuthFile, e.g. when another layer authenticates.
      '';
    };

    listenAddresses = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "127.0.0.1" ];
      description = "Addresses nginx listens on for this virtual host; empty means every interface (nginx's default).";
    };

    forceSSL = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Serve the virtual host over HTTPS and redirect HTTP to it. Needs enableACME or sslCertificate/sslCertificateKey.";
    };

    enableACME = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Obtain the certificate for serverName from Let's Encrypt (ACME
        HTTP-01 on port 80). Needs security.acme.acceptTerms and
        security.acme.defaults.email, and serverName resolvable from the internet.
      '';
    };

    sslCertificate = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/var/lib/secrets/ipex.crt";
      description = "Certificate (chain) for serverName when not using ACME.";
    };

    sslCertificateKey = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/var/lib/secrets/ipex.key";
      description = "Private key of sslCertificate, read by nginx at run time (keep it outside the Nix store).";
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open port 80, and 443 when TLS is configured, in the firewall.";
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
        assertion = exposed == [ ] || cfg.basicAuthFile != null || cfg.allowUnauthenticated;
        message = ''
          services.ipex.proxy has no authentication, but these are reachable from other machines:
          ${lib.concatStringsSep "; " exposed}.
          Set services.ipex.proxy.basicAuthFile to an htpasswd file (e.g. /run/secrets/ipex-htpasswd), or
          services.ipex.proxy.allowUnauthenticated = true if another layer authenticates, or listen on
          loopback only (listenAddresses = [ "127.0.0.1" ] and the services on 127.0.0.1).
        '';
      }
      {
        assertion = cfg.forceSSL -> (cfg.enableACME || (cfg.sslCertificate != null && cfg.sslCertificateKey != null));
        message = ''
          services.ipex.proxy.forceSSL needs a certificate: set enableACME = true, or sslCertificate and sslCertificateKey.
        '';
      }
      {
        assertion = (cfg.sslCertificate != null) == (cfg.sslCertificateKey != null);
        message = "services.ipex.proxy.sslCertificate and sslCertificateKey must be set together.";
      }
      {
        assertion = !(cfg.enableACME && cfg.sslCertificate != null);
        message = "services.ipex.proxy: use either enableACME or sslCertificate/sslCertificateKey, not both.";
      }
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
      recommendedTlsSettings = lib.mkIf tls true;

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
          inherit (cfg) listenAddresses;
        }
        (lib.mkIf tls {
          inherit (cfg) forceSSL enableACME;
          # A certificate without forceSSL serves HTTPS beside HTTP.
          addSSL = !cfg.forceSSL;
        })
        (lib.mkIf (cfg.sslCertificate != null) {
          inherit (cfg) sslCertificate sslCertificateKey;
        })
        {
          locations = lib.mkMerge [
            (lib.mkIf (cfg.ollamaServers != [ ]) {
              "/ollama/" = {
                proxyPass = "http://ollama-backend/";
                # Ollama on a loopback address accepts only loopback and
                # local host names in Host (DNS-rebinding protection), so the
                # upstream sees "localhost" whatever serverName is; the other
                # recommended headers are set here, since any proxy_set_header
                # in a location replaces the inherited ones.
                recommendedProxySettings = false;
                extraConfig = ''
                  proxy_http_version 1.1;
                  proxy_set_header Host localhost;
                  proxy_set_header Connection "";
                  proxy_set_header X-Real-IP $remote_addr;
                  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                  proxy_set_header X-Forwarded-Proto $scheme;
                  proxy_set_header X-Forwarded-Host $host;
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

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall ([ 80 ] ++ lib.optional tls 443);
  };
}
