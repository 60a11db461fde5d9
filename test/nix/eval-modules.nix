# Evaluates nix/modules/{agent,controller}.nix with nixpkgs' module system but
# without NixOS or nixpkgs: the few NixOS options and packages the modules use
# are stubbed below. Every attribute is one scenario and evaluates to plain
# data (no throw), so a test can read it with
#   nix-instantiate --eval --strict --json test/nix/eval-modules.nix \
#     --arg libPath /path/to/nixpkgs/lib -A SCENARIO
{ libPath }:

let
  lib = import libPath;
  inherit (lib) mkOption types;

  fakeDrv =
    name: extra:
    {
      type = "derivation";
      inherit name;
      outPath = "${builtins.storeDir}/00000000000000000000000000000000-${name}";
    }
    // extra;

  # The parts of nixpkgs the modules (and the example fleet) touch.
  pkgs = {
    inherit lib;
    systemd = fakeDrv "systemd" { meta.mainProgram = "systemctl"; };
    coreutils = fakeDrv "coreutils" { };
    nodejs_20 = fakeDrv "nodejs-20" { meta.mainProgram = "node"; };
    python3 = fakeDrv "python3" { };
    makeWrapper = fakeDrv "make-wrapper" { };
    callPackage = lib.callPackageWith pkgs;
    writeText = name: text: builtins.toFile name text;
    writeShellApplication =
      { name, text, ... }:
      fakeDrv name {
        meta.mainProgram = name;
        inherit text;
      };
    # Keep their arguments so that the package scenario can inspect them.
    buildNpmPackage =
      args:
      fakeDrv "${args.pname}-${args.version}" {
        inherit (args) meta;
        buildNpmPackageArgs = args;
      };
    importNpmLock = {
      __functor =
        _: args:
        fakeDrv "${args.pname or "unknown"}-${args.version or "0.0.0"}-sources" {
          importNpmLockArgs = args;
        };
      npmConfigHook = fakeDrv "npm-config-hook" { };
    };
    formats.json =
      { }:
      {
        type =
          let
            value =
              types.nullOr (
                types.oneOf [
                  types.bool
                  types.int
                  types.float
                  types.str
                  types.path
                  (types.attrsOf value)
                  (types.listOf value)
                ]
              )
              // {
                description = "JSON value";
              };
          in
          value;
        generate = name: value: builtins.toFile name (builtins.toJSON value);
      };
  };

  # The NixOS options the modules read or write. Anything else a configuration
  # sets (boot.*, fileSystems, …) lands in the freeform part and is ignored.
  nixosStub = {
    freeformType = types.attrsOf types.anything;
    options = {
      assertions = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      warnings = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      networking.hostName = mkOption {
        type = types.str;
        default = "stub-host";
      };
      networking.firewall.allowedTCPPorts = mkOption {
        type = types.listOf types.port;
        default = [ ];
      };
      nix.package = mkOption {
        type = types.package;
        default = fakeDrv "nix" { };
      };
      environment.systemPackages = mkOption {
        type = types.listOf types.package;
        default = [ ];
      };
      environment.etc = mkOption {
        type = types.attrsOf (types.submodule { freeformType = types.attrsOf types.anything; });
        default = { };
      };
      systemd.services = mkOption {
        type = types.attrsOf (types.submodule { freeformType = types.attrsOf types.anything; });
        default = { };
      };
      systemd.tmpfiles.settings = mkOption {
        type = types.attrsOf (types.attrsOf (types.attrsOf (types.attrsOf types.str)));
        default = { };
      };
      # Declared (as plain data) so a module setting it does not make the
      # freeform `services` depend on the module's own condition.
      services.nginx = mkOption {
        type = types.attrsOf types.anything;
        default = { };
      };
      users.users = mkOption {
        type = types.attrsOf (types.submodule { freeformType = types.attrsOf types.anything; });
        default = { };
      };
      users.groups = mkOption {
        type = types.attrsOf (types.submodule { freeformType = types.attrsOf types.anything; });
        default = { };
      };
    };
  };

  evalWith =
    {
      modules,
      specialArgs ? { },
    }:
    let
      evaluated = lib.evalModules {
        modules = [
          nixosStub
          { _module.args.pkgs = pkgs; }
          ../../nix/modules/agent.nix
          ../../nix/modules/controller.nix
        ]
        ++ modules;
        inherit specialArgs;
      };
      inherit (evaluated) config;
    in
    {
      failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
      inherit (config) warnings;
      etc = lib.mapAttrs (_: entry: toString entry.source) config.environment.etc;
      services = config.systemd.services;
      firewallPorts = config.networking.firewall.allowedTCPPorts;
      tmpfiles = config.systemd.tmpfiles.settings;
      inherit (config.users) users groups;
      systemPackages = map (p: p.name) config.environment.systemPackages;
      agent = {
        inherit (config.services.ferry-agent)
          enable
          hostName
          strategy
          confirmTimeout
          activationTimeout
          keepGenerations
          allowInsecureTransport
          settings
          ;
        packageName = config.services.ferry-agent.package.name;
      };
      controller = {
        inherit (config.services.ferry-controller)
          enable
          dataDir
          listenAddress
          grpcListenAddress
          openFirewall
          privateCache
          metricsPublic
          settings
          ;
      };
      # Freeform here (no nginx module in the stub): what the controller module set.
      inherit (config.services) nginx;
    };

  eval = module: evalWith { modules = [ module ]; };

  validAgent = {
    networking.hostName = "web-1";
    services.ferry-agent = {
      enable = true;
      controllerUrl = "wss://controller.example:7070/agent";
      tokenFile = "/var/lib/ferry-secrets/agent-token";
      substituters = [ "https://controller.example:7070/cache" ];
      trustedPublicKeys = [ "ferry-test-1:dGVzdC1rZXktbm90LXJlYWwtMDEyMzQ1Njc4OWFiY2RlZg==" ];
    };
  };
in
{
  agentDefault = eval validAgent;

  agentFull = eval {
    imports = [ validAgent ];
    services.ferry-agent = {
      hostName = "edge-7";
      strategy = "switch";
      confirmTimeout = 60;
      preSwitchControllerWait = 0;
      healthChecks = {
        systemd = {
          units = [ "nginx.service" ];
          strict = true;
        };
        http = [
          { url = "http://127.0.0.1:8080/healthz"; }
          {
            url = "http://127.0.0.1:8081/";
            expectStatus = 204;
            bodyContains = "ok";
            timeout = 2;
            strict = true;
          }
        ];
        command = [ { argv = [ "/run/current-system/sw/bin/true" ]; } ];
      };
      metrics.textfileDir = "/var/lib/prometheus-node-exporter-text-files";
      settings.logLevel = "debug";
    };
  };

  agentDisabled = eval { services.ferry-agent.enable = false; };

  # A lone host fed by bundles: no controller, token or substituter.
  agentStandalone = eval {
    networking.hostName = "kiosk-1";
    services.ferry-agent = {
      enable = true;
      controllerUrl = null;
      trustedPublicKeys = [ "ferry-test-1:dGVzdC1rZXktbm90LXJlYWwtMDEyMzQ1Njc4OWFiY2RlZg==" ];
    };
  };

  agentStandaloneWithToken = eval {
    networking.hostName = "kiosk-1";
    services.ferry-agent = {
      enable = true;
      controllerUrl = null;
      tokenFile = "/var/lib/ferry-secrets/agent-token";
      trustedPublicKeys = [ "ferry-test-1:dGVzdC1rZXktbm90LXJlYWwtMDEyMzQ1Njc4OWFiY2RlZg==" ];
    };
  };

  agentNoToken = eval {
    imports = [ validAgent ];
    services.ferry-agent.tokenFile = lib.mkForce null;
  };

  agentNoTrustedKey = eval {
    imports = [ validAgent ];
    services.ferry-agent.trustedPublicKeys = lib.mkForce [ ];
  };

  agentBadKey = eval {
    imports = [ validAgent ];
    services.ferry-agent.trustedPublicKeys = lib.mkForce [ "not a key" ];
  };

  agentNoSubstituter = eval {
    imports = [ validAgent ];
    services.ferry-agent.substituters = lib.mkForce [ ];
  };

  agentBadSubstituter = eval {
    imports = [ validAgent ];
    services.ferry-agent.substituters = lib.mkForce [ "controller:7070/cache" ];
  };

  agentTokenInStore = eval {
    imports = [ validAgent ];
    services.ferry-agent.tokenFile = lib.mkForce "${builtins.storeDir}/11111111111111111111111111111111-token";
  };

  # Checks the agent could never run: a shell name without a path, a URL
  # with a space in its host, a "unit" systemctl would read as an option.
  agentUnrunnableChecks = eval {
    imports = [ validAgent ];
    services.ferry-agent.healthChecks = {
      systemd.units = [
        "nginx.service"
        "--host=evil"
      ];
      http = [
        { url = "https://127.0.0.1/healthz"; }
        { url = "http://local host:8080/health"; }
      ];
      command = [
        { argv = [ "/run/current-system/sw/bin/true" ]; }
        {
          argv = [
            "sh"
            "-c"
            "true"
          ];
        }
      ];
    };
  };

  # Plaintext to another machine: refused unless explicitly allowed.
  agentInsecure = eval {
    imports = [ validAgent ];
    services.ferry-agent = {
      controllerUrl = lib.mkForce "ws://controller:7070/agent";
      substituters = lib.mkForce [
        "http://controller:7070/cache"
        "https://cache.example.org"
      ];
    };
  };

  agentInsecureAllowed = eval {
    imports = [ validAgent ];
    services.ferry-agent = {
      controllerUrl = lib.mkForce "ws://controller:7070/agent";
      substituters = lib.mkForce [ "http://controller:7070/cache" ];
      allowInsecureTransport = true;
    };
  };

  agentLoopback = eval {
    imports = [ validAgent ];
    services.ferry-agent = {
      controllerUrl = lib.mkForce "ws://127.0.0.1:7070/agent";
      substituters = lib.mkForce [
        "http://localhost:7070/cache"
        "http://[::1]:7070/cache"
      ];
    };
  };

  agentTls = eval {
    imports = [ validAgent ];
    services.ferry-agent = {
      caFile = "/etc/ferry/ca.pem";
      tlsCertFile = "/var/lib/ferry-secrets/agent.crt";
      tlsKeyFile = "/var/lib/ferry-secrets/agent.key";
    };
  };

  agentTlsBad = lib.mapAttrs (_: extra: eval { imports = [ validAgent ]; services.ferry-agent = extra; }) {
    halfPair.tlsCertFile = "/var/lib/ferry-secrets/agent.crt";
    keyInStore = {
      tlsCertFile = "/var/lib/ferry-secrets/agent.crt";
      tlsKeyFile = "${builtins.storeDir}/11111111111111111111111111111111-agent.key";
    };
  };

  agentIntents = eval {
    imports = [ validAgent ];
    services.ferry-agent = {
      intentPublicKeys = [ "ferry-ci-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" ];
      requireSignedIntents = true;
      allowedUnsignedModes = [ "dry-activate" ];
    };
  };

  agentIntentsNoKey = eval {
    imports = [ validAgent ];
    services.ferry-agent.requireSignedIntents = true;
  };

  agentBadIntentKey = eval {
    imports = [ validAgent ];
    services.ferry-agent.intentPublicKeys = [ "ferry-ci-1:AAAA" ];
  };

  agentBadUrl = eval {
    imports = [ validAgent ];
    services.ferry-agent.controllerUrl = lib.mkForce "http://controller:7070/";
  };

  # Several controller replicas.
  agentReplicas = eval {
    imports = [ validAgent ];
    services.ferry-agent = {
      controllerUrl = lib.mkForce null;
      controllerUrls = [
        "wss://ferry-1.example:7070/agent"
        "wss://ferry-2.example:7070/agent"
      ];
    };
  };

  agentReplicasBothUrls = eval {
    imports = [ validAgent ];
    services.ferry-agent.controllerUrls = [ "wss://ferry-2.example:7070/agent" ];
  };

  # The agent is enabled, and nothing says where the controller is (or that there is none).
  agentNoControllerUrl = eval {
    networking.hostName = "web-1";
    services.ferry-agent = {
      enable = true;
      tokenFile = "/var/lib/ferry-secrets/agent-token";
      substituters = [ "https://controller.example:7070/cache" ];
      trustedPublicKeys = [ "ferry-test-1:dGVzdC1rZXktbm90LXJlYWwtMDEyMzQ1Njc4OWFiY2RlZg==" ];
    };
  };

  agentReplicasBad = eval {
    imports = [ validAgent ];
    services.ferry-agent = {
      controllerUrl = lib.mkForce null;
      controllerUrls = [
        "wss://ferry-1.example:7070/agent"
        "ws://ferry-2.example:7070/agent"
        "https://ferry-3.example/"
      ];
    };
  };

  controllerDefault = eval { services.ferry-controller.enable = true; };

  controllerCacheGc = eval {
    services.ferry-controller = {
      enable = true;
      cacheGc = {
        every = "1d";
        minAge = "30d";
        keepBundles = 5;
      };
    };
  };

  controllerSharedCache = eval {
    services.ferry-controller = {
      enable = true;
      cacheDir = "/mnt/ferry-cache";
      cacheUrl = "https://cache.example.net";
    };
  };

  controllerSharedCacheBad = eval {
    services.ferry-controller = {
      enable = true;
      cacheDir = "/mnt/ferry cache";
    };
  };

  controllerCacheGcBad = eval {
    services.ferry-controller = {
      enable = true;
      cacheGc.every = "daily";
    };
  };

  controllerOpen = eval {
    services.ferry-controller = {
      enable = true;
      listenAddress = "[::]:443";
      grpcListenAddress = "0.0.0.0:7071";
      openFirewall = true;
      settings = {
        logLevel = "debug";
        publicUrl = "https://ferry.example.net";
        verbose = true;
        quiet = false;
        allowHost = [
          "a"
          "b"
        ];
      };
    };
  };

  # TLS with files handed over as systemd credentials, both client CAs, private cache.
  controllerTls = eval {
    services.ferry-controller = {
      enable = true;
      tls = {
        certFile = "/etc/ferry/tls/fullchain.pem";
        keyFile = "/etc/ferry/tls/key.pem";
        clientCaFile = "/etc/ferry/operators-ca.pem";
        agentClientCaFile = "/etc/ferry/agents-ca.pem";
      };
      privateCache = true;
    };
  };

  # Prometheus scrapes /metrics without a token.
  controllerMetricsPublic = eval {
    services.ferry-controller = {
      enable = true;
      metricsPublic = true;
    };
  };

  # ACME: the files read in place under the certificate's group, reloaded by SIGHUP.
  controllerAcme = eval {
    services.ferry-controller = {
      enable = true;
      tls = {
        certFile = "/var/lib/acme/ferry.example.net/fullchain.pem";
        keyFile = "/var/lib/acme/ferry.example.net/key.pem";
        group = "acme";
      };
    };
  };

  controllerTlsBad = lib.mapAttrs (_: tls: eval { services.ferry-controller = { enable = true; inherit tls; }; }) {
    halfPair.certFile = "/etc/ferry/tls/fullchain.pem";
    keyInStore = {
      certFile = "/etc/ferry/tls/fullchain.pem";
      keyFile = "${builtins.storeDir}/11111111111111111111111111111111-key.pem";
    };
    clientCaWithoutTls.clientCaFile = "/etc/ferry/operators-ca.pem";
  };

  controllerBad = eval {
    services.ferry-controller = {
      enable = true;
      listenAddress = "7070";
      settings.listen = "0.0.0.0:1";
    };
  };

  # Another directory under /var/lib: still systemd's StateDirectory.
  controllerVarLibDir = eval {
    services.ferry-controller = {
      enable = true;
      dataDir = "/var/lib/ferry/state";
    };
  };

  # Outside /var/lib: a system user, tmpfiles and a ReadWritePaths hole.
  controllerNginx = eval {
    services.ferry-controller = {
      enable = true;
      openFirewall = true;
      nginx.enable = true;
    };
  };

  controllerNginxSamePort = eval {
    services.ferry-controller = {
      enable = true;
      nginx.enable = true;
      nginx.listenAddress = "[::]:7070";
    };
  };

  controllerCustomDir = eval {
    services.ferry-controller = {
      enable = true;
      dataDir = "/srv/ferry";
    };
  };

  # One scenario per unsupported dataDir.
  controllerBadDataDir = lib.mapAttrs (_: dataDir: eval { services.ferry-controller = { enable = true; inherit dataDir; }; }) {
    relative = "var/lib/ferry";
    trailingSlash = "/srv/ferry/";
    dotDot = "/srv/ferry/../etc";
    space = "/srv/my ferry";
    specifier = "/srv/ferry-%i";
    store = "${builtins.storeDir}/11111111111111111111111111111111-ferry";
    tmp = "/tmp/ferry";
    home = "/home/ops/ferry";
    dynamicUserPrivate = "/var/lib/private/ferry";
    shared = "/srv";
  };

  # A replica: state in a shared PostgreSQL database, a password file and a shared admin token, with TLS by credentials too.
  controllerReplica = eval {
    services.ferry-controller = {
      enable = true;
      database = "postgres://ferry@db.example.net:5432/ferry";
      databasePasswordFile = "/run/secrets/ferry-pgpass";
      adminTokenFile = "/run/secrets/ferry-admin-token";
      tls = {
        certFile = "/etc/ferry/tls/fullchain.pem";
        keyFile = "/etc/ferry/tls/key.pem";
      };
    };
    services.postgresql.enable = true;
  };

  # A local PostgreSQL through its socket: the percent-encoded path must survive systemd's specifiers.
  controllerReplicaSocket = eval {
    services.ferry-controller = {
      enable = true;
      database = "postgresql://ferry@%2Frun%2Fpostgresql/ferry";
    };
  };

  # One scenario per replica setting that cannot work.
  controllerReplicaBad = lib.mapAttrs (_: settings: eval { services.ferry-controller = { enable = true; } // settings; }) {
    passwordInUrl.database = "postgres://ferry:hunter2@db.example.net/ferry";
    notPostgres.database = "mysql://ferry@db.example.net/ferry";
    passwordFileAlone.databasePasswordFile = "/run/secrets/ferry-pgpass";
    passwordFileInStore = {
      database = "postgres://ferry@db.example.net/ferry";
      databasePasswordFile = "${builtins.storeDir}/11111111111111111111111111111111-pgpass";
    };
    adminTokenInStore.adminTokenFile = "${builtins.storeDir}/11111111111111111111111111111111-admin-token";
    databaseInSettings.settings.database = "postgres://ferry@db.example.net/ferry";
  };

  # The package derivation, with buildNpmPackage stubbed (the agent's default
  # `package` falls back to callPackage ../package.nix when pkgs has no ferry).
  package =
    let
      drv = pkgs.callPackage ../../nix/package.nix { };
      args = drv.buildNpmPackageArgs;
      lockArgs = args.npmDeps.importNpmLockArgs;
    in
    {
      inherit (drv) name;
      inherit (args)
        pname
        version
        npmBuildScript
        npmRebuildFlags
        env
        ;
      inherit (args.meta) mainProgram;
      inherit (args) installPhase;
      nativeBuildInputs = map (p: p.name) args.nativeBuildInputs;
      hasNpmDepsHash = args ? npmDepsHash;
      npmConfigHookIsImportNpmLocks = args.npmConfigHook == pkgs.importNpmLock.npmConfigHook;
      importNpmLock = {
        inherit (lockArgs) package packageLock version;
        hasNpmRoot = lockArgs ? npmRoot;
      };
      # lib.fileset needs builtins.readFileType (Nix >= 2.14); on older Nix
      # the source whitelist cannot be evaluated here.
      sourceEvaluable = builtins ? readFileType;
    }
    // lib.optionalAttrs (builtins ? readFileType) {
      srcTop = builtins.attrNames (builtins.readDir args.src);
      srcCli = builtins.attrNames (builtins.readDir "${args.src}/packages/cli");
    };

  # flake.nix's outputs, with this lib and the stub packages standing in for
  # the nixpkgs input (no flakes, no network: Nix 2.8 evaluates it as a plain
  # function). Checks and nixosConfigurations need all of NixOS and are not
  # evaluated here.
  flake =
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      nixpkgs = {
        inherit lib;
        legacyPackages = lib.genAttrs systems (system: pkgs // { stdenv.hostPlatform.system = system; });
      };
      outputs = (import ../../flake.nix).outputs {
        self = outputs;
        inherit nixpkgs;
      };
      overlaid = lib.fix (lib.extends outputs.overlays.default (_: pkgs));
    in
    {
      packages = lib.mapAttrs (_: lib.mapAttrs (_: drv: drv.name)) outputs.packages;
      sameDefault = lib.mapAttrs (_: p: p.default == p.ferry) outputs.packages;
      mainProgram = outputs.packages.x86_64-linux.ferry.meta.mainProgram;
      overlayPackage = overlaid.ferry.name;
      hasNpmDepsHash = lib.mapAttrs (_: p: p.ferry.buildNpmPackageArgs ? npmDepsHash) outputs.packages;
      nixosModules = lib.attrNames outputs.nixosModules;
      # The modules the flake exports are the files the other scenarios test.
      moduleFiles = {
        agent = outputs.nixosModules.agent == ../../nix/modules/agent.nix;
        controller = outputs.nixosModules.controller == ../../nix/modules/controller.nix;
        default = outputs.nixosModules.default.imports == [
          ../../nix/modules/agent.nix
          ../../nix/modules/controller.nix
        ];
      };
    };

  # The example fleet's configuration.nix, once per environment.
  fleet = lib.genAttrs [ "staging" "production" ] (
    environment:
    evalWith {
      modules = [
        ../../deploy/fleet/configuration.nix
        { networking.hostName = "web-${environment}-1"; }
      ];
      specialArgs = { inherit environment; };
    }
  );
}
