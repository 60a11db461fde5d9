# NixOS module for the Ferry agent: `services.ferry-agent`.
#
# The agent connects out to the controller, fetches the closure it is told to
# run from the substituters configured *here* (checked against the keys
# configured *here*), switches the system, runs the health checks below and
# rolls back on its own when they fail.
{
  config,
  options,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib) mkOption types;

  cfg = config.services.ferry-agent;
  json = pkgs.formats.json { };

  # systemd puts the credential passed with LoadCredential=token:… here; it is
  # $CREDENTIALS_DIRECTORY/token for this unit, readable by the unit only.
  tokenCredential = "/run/credentials/ferry-agent.service/token";

  strictOption = mkOption {
    type = types.bool;
    default = false;
    description = "Value of this check's `strict` flag in the agent configuration.";
  };

  httpCheck = types.submodule {
    options = {
      url = mkOption {
        type = types.str;
        example = "http://127.0.0.1:8080/healthz";
        description = "URL the agent requests (from the host itself).";
      };
      expectStatus = mkOption {
        type = types.ints.between 100 599;
        default = 200;
        description = "HTTP status the response must have.";
      };
      bodyContains = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "Text the response body must contain; `null` does not look at the body.";
      };
      timeout = mkOption {
        type = types.ints.positive;
        default = 5;
        description = "Seconds one request may take.";
      };
      strict = strictOption;
    };
  };

  commandCheck = types.submodule {
    options = {
      argv = mkOption {
        type = types.nonEmptyListOf types.str;
        example = lib.literalExpression ''[ "''${pkgs.curl}/bin/curl" "-fsS" "http://127.0.0.1:8080/" ]'';
        description = ''
          Program and arguments, run as root without a shell. The check passes
          when it exits 0. Use absolute store paths: the unit's PATH only holds
          Nix and systemd.
        '';
      };
      timeout = mkOption {
        type = types.ints.positive;
        default = 30;
        description = "Seconds the command may run before it counts as failed.";
      };
      strict = strictOption;
    };
  };

  renderedHealthChecks =
    lib.optional (cfg.healthChecks.systemd.units != [ ]) {
      type = "systemd";
      inherit (cfg.healthChecks.systemd) units strict;
    }
    ++ map (
      check:
      {
        type = "http";
        inherit (check)
          url
          expectStatus
          timeout
          strict
          ;
      }
      // lib.optionalAttrs (check.bodyContains != null) { inherit (check) bodyContains; }
    ) cfg.healthChecks.http
    ++ map (check: {
      type = "command";
      inherit (check) argv timeout strict;
    }) cfg.healthChecks.command;

  configFile = json.generate "ferry-agent.json" cfg.settings;

  # What the agent refuses at start-up, caught here where the configuration
  # alone shows it: a check that can never run fails before the switch too,
  # counts as "already failing" and silently turns rollback off.
  unrunnableChecks = lib.concatLists (
    lib.imap0 (
      index: check:
      let
        kind = check.type or "";
        where = "healthChecks[${toString index}] (${kind})";
        program = lib.head ((check.argv or [ ]) ++ [ "" ]);
        url = check.url or "";
        units = if kind == "systemd" then check.units or [ ] else [ ];
      in
      lib.optional (kind == "command" && !lib.hasPrefix "/" program)
        "${where}: argv[0] \"${program}\" is not an absolute path; the agent runs no shell and searches no PATH (write e.g. \"\${pkgs.curl}/bin/curl\")"
      ++ lib.optional (
        kind == "http" && builtins.match "https?://[^/?#[:space:]]+([/?#][^[:space:]]*)?" url == null
      ) "${where}: url \"${url}\" is not an http:// or https:// URL with a host"
      ++ map (unit: "${where}: \"${unit}\" is not a systemd unit name") (
        lib.filter (unit: builtins.match "[^-/[:space:]][^/[:space:]]*" unit == null) units
      )
    ) cfg.settings.healthChecks
  );

  tokenPath = toString cfg.tokenFile;
  # controllerUrl has no default, so that forgetting the controller is an
  # error; read it only once it is defined (null included).
  urlDefined = options.services.ferry-agent.controllerUrl.isDefined;
  singleUrl = if urlDefined then cfg.controllerUrl else null;
  # null alongside controllerUrls only says "no single URL", so that a shared
  # profile's controllerUrl can be overridden with mkForce null.
  bothUrls = singleUrl != null && cfg.controllerUrls != [ ];
  neitherUrl = !urlDefined && cfg.controllerUrls == [ ];
  controllerUrls = if cfg.controllerUrls != [ ] then cfg.controllerUrls else lib.optional (singleUrl != null) singleUrl;
  # A standalone host (no controller) only applies bundles by hand.
  connected = controllerUrls != [ ];
  badControllerUrls = lib.filter (url: builtins.match "wss?://[^/]+(/.*)?/agent" url == null) controllerUrls;
  isStorePath = p: lib.hasPrefix "${builtins.storeDir}/" p || p == builtins.storeDir;

  # What the agent itself refuses (E_INSECURE_TRANSPORT), checked at build
  # time: a plaintext URL whose host is not loopback.
  urlHost =
    url:
    let
      m = builtins.match "[a-z]+://(\\[[^]]*]|[^/:]*).*" url;
    in
    if m == null then "" else builtins.head m;
  isLoopback =
    host:
    host == "localhost"
    || lib.hasSuffix ".localhost" host
    || builtins.match "127\\.[0-9.]+" host != null
    || host == "[::1]";
  plaintextAway = scheme: url: lib.hasPrefix "${scheme}://" url && !isLoopback (urlHost url);
  insecureUrls = lib.filter (plaintextAway "ws") controllerUrls ++ lib.filter (plaintextAway "http") cfg.substituters;
in
{
  options.services.ferry-agent = {
    enable = lib.mkEnableOption "the Ferry deployment agent, which lets a Ferry controller switch this machine";

    package = mkOption {
      type = types.package;
      default = pkgs.ferry or (pkgs.callPackage ../package.nix { });
      defaultText = lib.literalExpression "pkgs.ferry or (pkgs.callPackage ./nix/package.nix { })";
      description = "The Ferry package whose `ferry-agent` program runs the agent (`ferry agent` started with Node settings for a resident process).";
    };

    controllerUrl = mkOption {
      type = types.nullOr types.str;
      example = "wss://ferry.example.net/agent";
      description = ''
        WebSocket URL of the controller's agent endpoint (`ws://` or `wss://`,
        path `/agent`). The agent token travels over this link: use `wss://`
        (for example behind a TLS proxy) on any network you do not trust.

        `null` makes a standalone host with no controller: no agent service
        runs, and the configuration is only written to
        `/etc/ferry/agent.json` for `ferry agent apply-bundle FILE --config
        /etc/ferry/agent.json` (air-gapped hosts fed by signed bundles).
        `tokenFile` and `substituters` are then not needed.

        Several controller replicas: set `controllerUrls` instead.
      '';
    };

    controllerUrls = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "wss://ferry-1.example.net/agent"
        "wss://ferry-2.example.net/agent"
      ];
      description = ''
        Instead of `controllerUrl`: the agent endpoints of several controller
        replicas sharing one database. The agent holds one link, starts at a
        random replica and moves to the next when the link fails; a
        substituter on any of their hosts gets the agent's credentials.
        Leave `controllerUrl` unset (or `null`) when setting this.
      '';
    };

    hostName = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = lib.literalExpression "config.networking.hostName";
      description = "Name this machine has in the controller; deployments address it by this name.";
    };

    tokenFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/var/lib/ferry-secrets/agent-token";
      description = ''
        File holding this host's agent token. It must live outside the Nix store
        (which is world-readable); provision it out of band or with a secrets
        manager. systemd hands it to the unit with `LoadCredential=`, so the
        file may be readable by root only. Required unless `controllerUrl` is
        `null`.
      '';
    };

    substituters = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "https://ferry.example.net/cache" ];
      description = ''
        Binary caches the agent fetches closures from, usually the controller's
        cache at `http(s)://HOST:PORT/cache`. Only these are used; the
        controller cannot add one. Not needed on a standalone host
        (`controllerUrl = null`), which fetches from the bundle it applies.
      '';
    };

    trustedPublicKeys = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "ferry-cache-1:Y2hhbmdlLW1lLXRvLXlvdXItb3duLXB1YmxpYy1rZXk=" ];
      description = ''
        Public keys (`name:base64`) a closure must be signed with before the
        agent accepts it. The controller cannot add one.
      '';
    };

    caFile = mkOption {
      type = types.nullOr (types.either types.path types.str);
      default = null;
      example = lib.literalExpression "./ferry-ca.pem";
      description = ''
        CA certificate (PEM) that signed the controller's certificate, for
        `wss://` and `https://` (the agent link and Nix's fetches). It replaces
        the system trust store for both; `null` uses the system trust store
        (a certificate from a public CA, e.g. ACME). A CA certificate is
        public, so a path in the Nix store is fine.
      '';
    };

    tlsCertFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/lib/ferry-secrets/agent.crt";
      description = ''
        Client certificate (PEM) for a controller started with an agent client
        CA (`services.ferry-controller.tls.agentClientCaFile`). The agent runs
        as root and reads it, and `tlsKeyFile`, at every connection: renewed
        files apply without a restart.
      '';
    };

    tlsKeyFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/lib/ferry-secrets/agent.key";
      description = "Private key (PEM) of `tlsCertFile`; outside the Nix store.";
    };

    allowInsecureTransport = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Whether `ws://` and `http://` URLs to a non-loopback controller are
        allowed. The agent token then crosses the network in clear, and anyone
        on the path can act as this host; use it on a network you trust only.
      '';
    };

    intentPublicKeys = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "ferry-ci-1:Y2hhbmdlLW1lLXRvLXlvdXItb3duLWludGVudC1rZXk=" ];
      description = ''
        Public keys (`name:base64`, as `ferry keys generate` writes them) of the
        operators or CI jobs allowed to sign deploy intents for this host
        (`ferry deploy --intent-key-file`, `ferry intent sign`). A signed intent
        names this host, one store path and one mode, and carries a version
        this host never goes below. Use a key of its own, not the cache key.
      '';
    };

    requireSignedIntents = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Refuse every deployment, dry run and bundle that comes without a deploy
        intent signed by one of `intentPublicKeys`. With it, a compromised or
        impersonated controller can withhold updates but never choose what
        this host runs, roll it back to an older system, or pick its mode.
      '';
    };

    allowedUnsignedModes = mkOption {
      type = types.listOf (
        types.enum [
          "trial"
          "switch"
          "test"
          "boot"
          "dry-activate"
        ]
      );
      default = [
        "trial"
        "switch"
        "test"
        "boot"
        "dry-activate"
      ];
      example = [
        "trial"
        "dry-activate"
      ];
      description = ''
        Without `requireSignedIntents`: what a controller may ask for without a
        signed intent. A deployment naming no mode counts as this host's
        `strategy`. Leaving out `boot` keeps a controller from installing a
        system for the next boot, which skips the trial and its health checks.
      '';
    };

    strategy = mkOption {
      type = types.enum [
        "trial"
        "switch"
        "boot"
      ];
      default = "trial";
      description = ''
        How a new system is activated when a deployment names no mode
        (`ferry deploy --mode` overrides it): `trial` activates with
        `switch-to-configuration test` and makes the system the boot default
        only once it is confirmed healthy (rolling back otherwise); `switch`
        and `boot` are `switch-to-configuration switch` / `boot`.
      '';
    };

    confirmTimeout = mkOption {
      type = types.ints.positive;
      default = 120;
      description = ''
        Seconds after activation within which the health checks and a
        heartbeat with the controller must succeed; otherwise the agent rolls back.
      '';
    };

    preSwitchControllerWait = mkOption {
      type = types.nullOr types.ints.unsigned;
      default = null;
      example = 15;
      description = ''
        Seconds the agent keeps trying to reach the controller just before it
        switches (it never switches a host the controller could not then
        judge); `0` tries once. `null` waits as long as `confirmTimeout`.
      '';
    };

    activationTimeout = mkOption {
      type = types.ints.positive;
      default = 600;
      description = "Seconds `switch-to-configuration` may run before the activation counts as failed.";
    };

    keepGenerations = mkOption {
      type = types.ints.positive;
      default = 5;
      description = "System profile generations the agent keeps (older ones are deleted).";
    };

    metrics.textfileDir = mkOption {
      type = types.nullOr (types.strMatching "/.*");
      default = null;
      example = "/var/lib/prometheus-node-exporter-text-files";
      description = ''
        Directory read by node-exporter's textfile collector
        (`--collector.textfile.directory`). The agent replaces
        `ferry_agent.prom` there, atomically, when it starts and after each
        transaction: step durations, rollbacks by reason, health-check results
        and fetched bytes. `null` writes no metrics.
      '';
    };

    healthChecks = {
      systemd = {
        units = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [
            "nginx.service"
            "postgresql.service"
          ];
          description = "systemd units that must be active after activation.";
        };
        strict = strictOption;
      };

      http = mkOption {
        type = types.listOf httpCheck;
        default = [ ];
        example = lib.literalExpression ''
          [ { url = "http://127.0.0.1:8080/healthz"; bodyContains = "ok"; } ]
        '';
        description = "HTTP endpoints that must answer as expected after activation.";
      };

      command = mkOption {
        type = types.listOf commandCheck;
        default = [ ];
        description = "Commands that must exit 0 after activation.";
      };
    };

    settings = mkOption {
      type = types.submodule {
        freeformType = json.type;
        options = {
          stateDir = mkOption {
            type = types.str;
            default = "/var/lib/ferry-agent";
            description = "Where the agent keeps its state file (the unit's `StateDirectory`).";
          };
          profile = mkOption {
            type = types.str;
            default = "/nix/var/nix/profiles/system";
            description = "System profile the agent sets and rolls back.";
          };
          logLevel = mkOption {
            type = types.enum [
              "debug"
              "info"
              "warn"
              "error"
            ];
            default = "info";
            description = "Agent log level.";
          };
          healthChecks = mkOption {
            type = types.listOf json.type;
            default = [ ];
            description = ''
              Health checks in the agent's JSON form. The typed
              `healthChecks.*` options are appended here; add raw entries only
              for check kinds those options do not cover.
            '';
          };
        };
      };
      default = { };
      description = ''
        The agent's JSON configuration file (`ferry agent --config FILE`). The
        typed options above are written into it; other keys given here are
        passed through as they are (the agent rejects keys it does not know).
        `tokenFile` always points at the systemd credential.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.trustedPublicKeys != [ ];
        message = ''
          services.ferry-agent.trustedPublicKeys is empty, so the agent could not accept any closure.
          Add the public key that signs your Ferry cache, e.g.
            services.ferry-agent.trustedPublicKeys = [ "ferry-cache-1:BASE64…" ];
          (a key pair is made with `nix-store --generate-binary-cache-key ferry-cache-1 cache.sec cache.pub`).
        '';
      }
      {
        assertion = lib.all (key: builtins.match "[^:[:space:]]+:[A-Za-z0-9+/]+=*" key != null) cfg.trustedPublicKeys;
        message = ''
          services.ferry-agent.trustedPublicKeys must be `name:base64` keys (the contents of a
          public key file from `nix-store --generate-binary-cache-key`); got: ${lib.concatStringsSep ", " cfg.trustedPublicKeys}
        '';
      }
      {
        assertion = !cfg.requireSignedIntents || cfg.intentPublicKeys != [ ];
        message = ''
          services.ferry-agent.requireSignedIntents is set but intentPublicKeys is empty, so the agent
          could not accept any deployment. Add the public half of the key your CI or operators sign
          intents with, e.g.
            services.ferry-agent.intentPublicKeys = [ "ferry-ci-1:BASE64…" ];
          (a key pair is made with `ferry keys generate --name ferry-ci-1 --out DIR`).
        '';
      }
      {
        assertion = lib.all (key: builtins.match "[A-Za-z0-9._+-]+:[A-Za-z0-9+/]{43}=" key != null) cfg.intentPublicKeys;
        message = ''
          services.ferry-agent.intentPublicKeys must be ed25519 public keys in Nix's `name:base64` form
          (the contents of a .public file from `ferry keys generate`); got: ${lib.concatStringsSep ", " cfg.intentPublicKeys}
        '';
      }
      {
        assertion = !connected || cfg.substituters != [ ];
        message = ''
          services.ferry-agent.substituters is empty, so the agent has nowhere to fetch closures from.
          Point it at the controller's binary cache, e.g.
            services.ferry-agent.substituters = [ "https://ferry.example.net/cache" ];
          (or set services.ferry-agent.controllerUrl = null for a standalone host fed by bundles).
        '';
      }
      {
        assertion = lib.all (url: builtins.match "(https?|file)://[^[:space:]]+" url != null) cfg.substituters;
        message = ''
          services.ferry-agent.substituters must be http://, https:// or file:// URLs; got: ${lib.concatStringsSep ", " cfg.substituters}
        '';
      }
      {
        assertion = !neitherUrl;
        message = ''
          services.ferry-agent names no controller. Set
            services.ferry-agent.controllerUrl = "wss://ferry.example.net/agent";
          or, for several controller replicas, services.ferry-agent.controllerUrls = [ … ];
          or, for a standalone host fed by bundles, services.ferry-agent.controllerUrl = null;
        '';
      }
      {
        assertion = !bothUrls;
        message = ''
          services.ferry-agent.controllerUrl and controllerUrls are both set (${toString singleUrl}; ${lib.concatStringsSep ", " cfg.controllerUrls}).
          Keep one: controllerUrls for several controller replicas, controllerUrl for one.
        '';
      }
      {
        assertion = badControllerUrls == [ ];
        message = ''
          services.ferry-agent.${
            if cfg.controllerUrls != [ ] then "controllerUrls must hold ws:// or wss:// URLs" else "controllerUrl must be a ws:// or wss:// URL"
          } whose path ends in /agent,
          e.g. "wss://ferry.example.net/agent"; got ${lib.concatMapStringsSep ", " (url: "\"${url}\"") badControllerUrls}.
        '';
      }
      {
        assertion = !connected || cfg.tokenFile != null;
        message = ''
          services.ferry-agent.tokenFile is not set, so the agent cannot authenticate to ${lib.concatStringsSep ", " controllerUrls}.
          Give the path of a root-only file holding the token `ferry host add` printed, e.g.
            services.ferry-agent.tokenFile = "/var/lib/ferry-secrets/agent-token";
          (or set services.ferry-agent.controllerUrl = null for a standalone host fed by bundles).
        '';
      }
      {
        assertion = cfg.allowInsecureTransport || insecureUrls == [ ];
        message = ''
          services.ferry-agent: ${lib.concatStringsSep ", " insecureUrls} would send this host's agent token
          in clear to a machine other than this one. Use wss:// and https:// (services.ferry-controller.tls,
          with services.ferry-agent.caFile for your own CA), or, on a network you trust, set
            services.ferry-agent.allowInsecureTransport = true;
        '';
      }
      {
        assertion = (cfg.tlsCertFile == null) == (cfg.tlsKeyFile == null);
        message = ''
          services.ferry-agent.tlsCertFile and tlsKeyFile go together: set both or neither.
        '';
      }
      {
        assertion = cfg.tlsKeyFile == null || !isStorePath cfg.tlsKeyFile;
        message = ''
          services.ferry-agent.tlsKeyFile is in the Nix store (${toString cfg.tlsKeyFile}), where every local user
          can read it. Give the path of a root-only file outside the store as a string.
        '';
      }
      {
        assertion = cfg.hostName != "";
        message = ''
          services.ferry-agent.hostName is empty. Set networking.hostName, or set
          services.ferry-agent.hostName to the name this machine has in the controller.
        '';
      }
      {
        assertion = unrunnableChecks == [ ];
        message = ''
          services.ferry-agent has health checks that cannot run; each would fail before the switch
          too, count as "already failing" and silently turn rollback off:
            ${lib.concatStringsSep "\n  " unrunnableChecks}
        '';
      }
      {
        assertion = cfg.tokenFile == null || !isStorePath tokenPath;
        message = ''
          services.ferry-agent.tokenFile is in the Nix store (${tokenPath}), where every local user
          can read it. Put the token in a root-only file outside the store and give its path as a
          string, e.g. services.ferry-agent.tokenFile = "/var/lib/ferry-secrets/agent-token";
          (in a flake, a path literal such as ./token already points into the store).
        '';
      }
    ];

    services.ferry-agent.settings = {
      inherit (cfg)
        hostName
        trustedPublicKeys
        intentPublicKeys
        requireSignedIntents
        allowedUnsignedModes
        strategy
        confirmTimeout
        activationTimeout
        keepGenerations
        allowInsecureTransport
        ;
      healthChecks = renderedHealthChecks;
    }
    // lib.optionalAttrs connected {
      inherit (cfg) substituters;
      tokenFile = tokenCredential;
      # The unit below restarts the agent on its restart status, so it may ask for one.
      selfRestart = true;
    }
    # The key the operator used, so that a one-controller host's file is unchanged.
    // lib.optionalAttrs (connected && cfg.controllerUrls == [ ]) { controllerUrl = singleUrl; }
    // lib.optionalAttrs (cfg.controllerUrls != [ ]) { inherit (cfg) controllerUrls; }
    // lib.optionalAttrs (!connected && cfg.substituters != [ ]) { inherit (cfg) substituters; }
    // lib.optionalAttrs (cfg.preSwitchControllerWait != null) { inherit (cfg) preSwitchControllerWait; }
    // lib.optionalAttrs (cfg.caFile != null) { caFile = "${cfg.caFile}"; }
    // lib.optionalAttrs (cfg.tlsCertFile != null) { inherit (cfg) tlsCertFile; }
    // lib.optionalAttrs (cfg.tlsKeyFile != null) { inherit (cfg) tlsKeyFile; }
    // lib.optionalAttrs (cfg.metrics.textfileDir != null) { metricsTextfileDir = cfg.metrics.textfileDir; };

    warnings = lib.optional (!connected && cfg.tokenFile != null) ''
      services.ferry-agent.tokenFile is set but controllerUrl is null: a standalone host connects to
      no controller, so the token is not used.
    '';

    # Where `ferry agent apply-bundle FILE --config /etc/ferry/agent.json` finds
    # this host's configuration, with or without a controller.
    environment.etc."ferry/agent.json".source = configFile;

    # The CLI on the host, e.g. for `ferry agent apply-bundle` on air-gapped sites.
    environment.systemPackages = [ cfg.package ];

    systemd.services.ferry-agent = lib.mkIf connected {
      description = "Ferry deployment agent";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];

      # The agent runs switch-to-configuration itself. If switching restarted
      # (or stopped and started) this unit, it would kill the transaction it is
      # in the middle of. Instead the agent restarts itself into a new agent
      # package or configuration once the activation has settled and is
      # recorded: it exits with status 75, which RestartForceExitStatus turns
      # into a restart from the unit as the switch reloaded it.
      restartIfChanged = false;
      stopIfChanged = false;

      # The system's own Nix (nix-store, nix-env) and systemctl.
      path = [
        config.nix.package
        pkgs.systemd
      ];

      unitConfig = {
        # A configuration that drops the agent must not stop it while it is
        # still activating that very configuration.
        X-StopOnRemoval = false;
        # Keep retrying forever: a host must never give up on its controller.
        StartLimitIntervalSec = 0;
      };

      # Runs as root and without sandboxing: it has to switch the whole system.
      serviceConfig = {
        # ferry-agent: `ferry agent` under Node settings for a resident, mostly idle process.
        ExecStart = "${lib.getExe' cfg.package "ferry-agent"} --config ${configFile}";
        Restart = "always";
        # The agent's "restart me into the new build" status (self-restart.ts).
        RestartForceExitStatus = 75;
        RestartSec = 5;
        # Only the agent's main process is killed when the unit stops or
        # restarts: a switch-to-configuration (or rollback) child must outlive
        # an agent restart, or the system is left half-switched.
        KillMode = "process";
        StateDirectory = "ferry-agent";
        StateDirectoryMode = "0700";
        LoadCredential = "token:${tokenPath}";
      };
    };
  };
}
