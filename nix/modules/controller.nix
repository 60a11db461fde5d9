# NixOS module for the Ferry controller: `services.ferry-controller`.
#
# One port (listenAddress) serves agents (WebSocket, /agent) and the binary
# cache (HTTP, /cache); a second one (grpcListenAddress) serves the operator
# gRPC API used by the `ferry` CLI and CI. With `tls.certFile`/`tls.keyFile`
# both speak TLS (https/wss and gRPC over TLS). With `nginx.enable`, nginx also
# serves the cache's files read-only on a port of its own. With `database`,
# several controllers (replicas, one per machine) share one PostgreSQL database.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib) mkOption types;

  cfg = config.services.ferry-controller;
  inherit (cfg) dataDir;

  # Under /var/lib, systemd's StateDirectory creates the directory and hands
  # it to the unit's DynamicUser (the UID is allocated at start, so nothing
  # outside the unit can own files for it). Anywhere else the directory needs a
  # fixed owner: a system user, the directory made by tmpfiles, and a
  # ReadWritePaths hole in ProtectSystem=strict.
  stateDirectory =
    let
      m = builtins.match "/var/lib/(.+)" dataDir;
    in
    if m == null then null else builtins.head m;
  # nginx must reach the cache through the data directory: a DynamicUser's
  # StateDirectory sits under /var/lib/private (mode 0700, root), so serving
  # with nginx needs the fixed user too.
  # A cache directory of its own (a share other replicas mount too) needs an
  # owner that stays the same across restarts and machines: the fixed user.
  staticUser = stateDirectory == null || cfg.nginx.enable || cfg.cacheDir != null;
  user = "ferry-controller";
  nginxGroup = config.services.nginx.group or "nginx";
  cacheDir = if cfg.cacheDir != null then cfg.cacheDir else "${dataDir}/cache";
  cacheDirWellFormed =
    cfg.cacheDir == null || (wellFormedPath cfg.cacheDir && !lib.hasPrefix "${builtins.storeDir}/" cfg.cacheDir);
  # "0.0.0.0:7080" -> "0.0.0.0", "[::]:7080" -> "[::]".
  hostOf =
    address:
    let
      m = builtins.match "(.*):[0-9]+" address;
    in
    if m == null then null else builtins.head m;
  nginxPort = portOf cfg.nginx.listenAddress;
  # The controller answers nix-cache-info itself; nginx serves the same text from a file.
  nixCacheInfo = pkgs.writeText "nix-cache-info" "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n";

  # Path components of letters, digits and ._@+- only: the path is written
  # unquoted into StateDirectory=, ReadWritePaths= and tmpfiles.d, where
  # a space would split it and a "%" would be a systemd specifier.
  wellFormedPath =
    path:
    builtins.match "(/[A-Za-z0-9._@+-]+)+" path != null
    && lib.all (c: c != "." && c != "..") (lib.tail (lib.splitString "/" path));
  dataDirWellFormed = wellFormedPath dataDir;
  under = prefix: dataDir == prefix || lib.hasPrefix "${prefix}/" dataDir;
  # Places the unit's own sandbox hides or empties: PrivateTmp gives it a
  # private /tmp and /var/tmp, ProtectHome hides the home directories, and
  # /var/lib/private belongs to systemd's DynamicUser machinery.
  hiddenPrefixes = [
    "/tmp"
    "/var/tmp"
    "/home"
    "/root"
    "/run/user"
    "/var/lib/private"
  ];
  # Directories other software shares: tmpfiles would hand one of these to
  # the controller's user with mode 0700.
  sharedDirs = [
    "/var"
    "/var/lib"
    "/srv"
    "/opt"
    "/mnt"
    "/media"
    "/etc"
    "/usr"
    "/nix"
    "/boot"
    "/run"
  ];

  # "0.0.0.0:7070", "[::]:7070", ":7070" -> 7070 (null when there is no port).
  portOf =
    address:
    let
      m = builtins.match ".*:([0-9]+)" address;
    in
    if m == null then null else lib.toInt (builtins.head m);
  listenPort = portOf cfg.listenAddress;
  privilegedPorts = lib.filter (p: p != null && p < 1024) [
    listenPort
    (portOf cfg.grpcListenAddress)
  ];

  # Flags owned by the dedicated options; settings must not repeat them.
  reservedSettings = [
    "dataDir"
    "listen"
    "grpcListen"
    "tlsCert"
    "tlsKey"
    "clientCa"
    "agentClientCa"
    "privateCache"
    "metricsPublic"
    "cacheGcEvery"
    "cacheGcMinAge"
    "cacheGcKeepBundles"
    "cacheDir"
    "cacheUrl"
    "database"
  ];

  # What `ferry controller` accepts as a duration: "90s", "1h30m", "7d", or seconds.
  isDuration = value: builtins.match "([0-9]+(\\.[0-9]+)?)|(([0-9]+(\\.[0-9]+)?(ms|s|m|h|d))+)" value != null;
  gc = cfg.cacheGc;

  tls = cfg.tls;
  tlsEnabled = tls.certFile != null && tls.keyFile != null;
  # Without tls.group the certificate and key reach the unit as systemd
  # credentials (root-only files work); with it the controller reads them where
  # they are, as a member of that group, so that a reload sees renewed files.
  credentialsDir = "/run/credentials/ferry-controller.service";
  viaCredentials = tlsEnabled && tls.group == null;
  certPath = if viaCredentials then "${credentialsDir}/tls-cert" else tls.certFile;
  keyPath = if viaCredentials then "${credentialsDir}/tls-key" else tls.keyFile;
  isStorePath = p: p != null && lib.hasPrefix "${builtins.storeDir}/" (toString p);

  # Replicas: the database URL reaches the controller through its environment
  # (FERRY_DATABASE_URL), never the command line; the password through a
  # pgpass file (PGPASSFILE), read by the controller's PostgreSQL client.
  database = cfg.database;
  databaseUrlWellFormed = database == null || builtins.match "postgres(ql)?://[^[:space:]]+" database != null;
  # postgres://USER:PASSWORD@HOST/DB: the part before "@" holds a ":".
  databaseUrlHasPassword = database != null && builtins.match "postgres(ql)?://[^/@]*:[^/@]*@.*" database != null;
  credentials =
    lib.optionals viaCredentials [
      "tls-cert:${tls.certFile}"
      "tls-key:${tls.keyFile}"
    ]
    ++ lib.optional (cfg.databasePasswordFile != null) "pgpass:${cfg.databasePasswordFile}"
    ++ lib.optional (cfg.adminTokenFile != null) "admin-token:${cfg.adminTokenFile}";
  # Copied at every start, so that the file given here stays the admin token
  # (the controller reads DATA_DIR/admin.token); through a temporary name, so
  # that a crash never leaves half a token.
  installAdminToken = pkgs.writeShellApplication {
    name = "ferry-controller-admin-token";
    runtimeInputs = [ pkgs.coreutils ];
    text = ''
      install -m 0600 ${credentialsDir}/admin-token ${dataDir}/.admin.token.new
      mv -f ${dataDir}/.admin.token.new ${dataDir}/admin.token
    '';
  };

  # settings.fooBar = "x" -> --foo-bar x; true -> --foo-bar; false/null -> nothing;
  # a list repeats the flag.
  kebab = name: lib.concatMapStrings (c: if c != lib.toLower c then "-" + lib.toLower c else c) (lib.stringToCharacters name);
  settingFlags =
    name: value:
    let
      flag = "--" + kebab name;
    in
    if value == true then
      [ flag ]
    else if value == false || value == null then
      [ ]
    else if builtins.isList value then
      lib.concatMap (v: [
        flag
        (toString v)
      ]) value
    else
      [
        flag
        (toString value)
      ];

  args = [
    "controller"
    "--data-dir"
    dataDir
    "--listen"
    cfg.listenAddress
    "--grpc-listen"
    cfg.grpcListenAddress
  ]
  ++ lib.optionals tlsEnabled [
    "--tls-cert"
    certPath
    "--tls-key"
    keyPath
  ]
  ++ lib.optionals (tls.clientCaFile != null) [
    "--client-ca"
    # Interpolated: a path literal is copied into the store (a CA is public).
    "${tls.clientCaFile}"
  ]
  ++ lib.optionals (tls.agentClientCaFile != null) [
    "--agent-client-ca"
    "${tls.agentClientCaFile}"
  ]
  ++ lib.optionals (cfg.cacheDir != null) [
    "--cache-dir"
    cfg.cacheDir
  ]
  ++ lib.optionals (cfg.cacheUrl != null) [
    "--cache-url"
    cfg.cacheUrl
  ]
  ++ lib.optional cfg.privateCache "--private-cache"
  ++ lib.optional cfg.metricsPublic "--metrics-public"
  ++ lib.optionals (gc.every != null) [
    "--cache-gc-every"
    gc.every
  ]
  ++ lib.optionals (gc.minAge != null) [
    "--cache-gc-min-age"
    gc.minAge
  ]
  ++ lib.optionals (gc.keepBundles != null) [
    "--cache-gc-keep-bundles"
    (toString gc.keepBundles)
  ]
  ++ lib.concatLists (lib.mapAttrsToList settingFlags cfg.settings);

  # Shell-style quoting is understood by systemd's ExecStart; "%" is systemd's
  # specifier character and must be doubled.
  execArgs = lib.replaceStrings [ "%" ] [ "%%" ] (lib.escapeShellArgs args);

  scalar = types.oneOf [
    types.bool
    types.int
    types.str
  ];
in
{
  options.services.ferry-controller = {
    enable = lib.mkEnableOption "the Ferry controller (agent hub, binary cache and operator API)";

    package = mkOption {
      type = types.package;
      default = pkgs.ferry or (pkgs.callPackage ../package.nix { });
      defaultText = lib.literalExpression "pkgs.ferry or (pkgs.callPackage ./nix/package.nix { })";
      description = "The Ferry package whose `ferry controller` command runs the controller.";
    };

    dataDir = mkOption {
      type = types.str;
      default = "/var/lib/ferry-controller";
      example = "/srv/ferry";
      description = ''
        Where the controller keeps its SQLite database and the binary
        cache's NARs. Under `/var/lib` the directory is a systemd
        `StateDirectory` owned by the unit's dynamic user. Anywhere else
        (a data disk, say) the controller runs as the system user
        `ferry-controller`, the directory is created by systemd-tmpfiles
        (mode 0700, owned by that user) and made writable in the unit's
        sandbox; the unit waits for the file system holding it. Not under
        /tmp, /var/tmp, /home, /root or /run/user, which the unit's sandbox
        hides.
      '';
    };

    listenAddress = mkOption {
      type = types.str;
      default = "0.0.0.0:7070";
      example = "[::]:7070";
      description = ''
        HOST:PORT for agents and the binary cache: agents connect to
        `ws://HOST:PORT/agent`, hosts and CI use `http://HOST:PORT/cache`.
      '';
    };

    grpcListenAddress = mkOption {
      type = types.str;
      default = "127.0.0.1:7071";
      example = "0.0.0.0:7071";
      description = ''
        HOST:PORT of the operator gRPC API (`ferry deploy`, `ferry cache push`
        … with `--controller`/`FERRY_CONTROLLER`). Loopback by default; it is
        never opened by `openFirewall`.
      '';
    };

    tls = {
      certFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/var/lib/acme/ferry.example.net/fullchain.pem";
        description = ''
          PEM certificate (followed by its intermediates) for both listeners:
          agents and the cache then use `wss://` and `https://`, the CLI
          `https://HOST:PORT` for gRPC. It must name every address clients dial
          (subjectAltName). `null` serves plaintext.
        '';
      };
      keyFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/var/lib/acme/ferry.example.net/key.pem";
        description = "PEM private key of `tls.certFile`. Keep it out of the Nix store.";
      };
      group = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "acme";
        description = ''
          Group that may read `tls.certFile` and `tls.keyFile`, such as
          `security.acme.certs.<name>.group`. The controller then reads the
          files in place as a member of that group, and `systemctl reload
          ferry-controller` (SIGHUP; what `security.acme.certs.<name>.reloadServices`
          runs after a renewal) switches to renewed files without dropping
          agents. When `null`, systemd hands the files over with
          `LoadCredential=` (they may be readable by root only), and systemd
          does not refresh credentials on reload: a new certificate takes a restart.
        '';
      };
      clientCaFile = mkOption {
        type = types.nullOr (types.either types.path types.str);
        default = null;
        description = "CA (PEM) whose client certificates operators must present on the gRPC port (mutual TLS).";
      };
      agentClientCaFile = mkOption {
        type = types.nullOr (types.either types.path types.str);
        default = null;
        description = ''
          CA (PEM) whose client certificates agents must present on `/agent`.
          Cache reads still authenticate by token only: Nix cannot present
          a client certificate.
        '';
      };
    };

    privateCache = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Whether reading the binary cache needs credentials: a host signs in with
        its name and agent token (its agent writes the netrc for Nix), the
        operator with the operator token. The cache is public by default: it
        only holds what you pushed, and hosts check every path's signature.
        Turn this on when closures may embed secrets.
      '';
    };

    metricsPublic = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Whether `GET /metrics` (Prometheus metrics, on the agent and cache
        listener) answers without a token. By default a scraper must send a
        token with the `read` scope (`authorization: Bearer …`, Prometheus'
        `authorization.credentials_file`). Turn this on only when the listener
        is reachable from a private network alone: the metrics show how many
        hosts there are and how deployments go.
      '';
    };

    cacheDir = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/mnt/ferry-cache";
      description = ''
        The binary cache's directory; null: `dataDir`/cache. Controller replicas
        sharing one PostgreSQL database share this directory too (NFS or the
        like, mounted before the unit starts and writable by the user
        `ferry-controller`, which the controller then runs as). Each replica
        serves what any of them stored; set `cacheGc.every` on one replica only
        (a collection takes the directory's gc.lock; the others refuse theirs).
      '';
    };

    cacheUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://cache.example.net";
      description = ''
        An external Nix binary cache (nginx, S3 behind HTTP, Cachix) that CI
        pushes to: deploys are then checked against it, by narinfo, instead of
        the controller's own cache. Agents fetch from it directly: list it,
        with its public key, in `services.ferry-agent.substituters` and
        `trustedPublicKeys` on every host.
      '';
    };

    cacheGc = {
      every = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "1d";
        description = ''
          How often the controller runs `ferry cache gc` on its own (a duration from
          1m to 24d, e.g. "1d"); never when null, the default: deleting from the
          cache cannot be undone, so turning it on is the operator's decision.
          Each run deletes what no host's desired, current or previous system, no
          running or recent rollout and no kept bundle needs, and is audited.
        '';
      };
      minAge = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "30d";
        description = ''
          What a collection (scheduled, or `ferry cache gc` without `--min-age`)
          keeps: unneeded paths whose narinfo is younger than this (by file mtime),
          and the systems of rollouts finished within it. Null: the controller's
          default, 7d.
        '';
      };
      keepBundles = mkOption {
        type = types.nullOr types.ints.unsigned;
        default = null;
        example = 5;
        description = "The systems of the newest this many imported bundles are kept. Null: the controller's default, 3.";
      };
    };

    database = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "postgres://ferry@db.example.net:5432/ferry";
      description = ''
        PostgreSQL URL (`postgres://USER@HOST:PORT/DB`) of the state database
        shared by several controllers (replicas, each with its own `dataDir`).
        Given to the controller as `FERRY_DATABASE_URL` in the unit's
        environment, not on its command line. No password here: the URL lands
        in the Nix store, which every local user can read; see
        `databasePasswordFile`. `null` (the default): SQLite in `dataDir`, one
        controller.
      '';
    };

    databasePasswordFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/ferry-pgpass";
      description = ''
        The database password, as a file in PostgreSQL's pgpass format (not a
        bare password): lines `hostname:port:database:username:password`,
        where `*` matches anything and a `:` or `\` inside a field is written
        `\:` or `\\`, e.g. the one line `*:*:*:ferry:SECRET`. The controller
        reads it as `PGPASSFILE`, like psql does. It reaches the unit as a
        systemd credential, so the file may be readable by root only. Keep it
        outside the Nix store.
      '';
    };

    adminTokenFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/ferry-admin-token";
      description = ''
        A file holding the built-in admin token (32 characters or more, e.g.
        from `openssl rand -hex 32`), copied to `dataDir/admin.token` before
        every start. Replicas on one `database` must share one admin token:
        give each the same file (or a copy of `admin.token` of the replica
        that started first). To rotate it, run `ferry token rotate admin` on
        one replica, put the new token in this file on every replica and
        restart them. `null`: the controller makes its own `admin.token` at
        first start. Keep it outside the Nix store.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Whether to open the port of `listenAddress` (and of `nginx.listenAddress`
        when nginx serves the cache) in the firewall; never the gRPC port.
      '';
    };

    nginx = {
      enable = lib.mkEnableOption ''
        serving the binary cache's files with nginx on `nginx.listenAddress`, at
        `http://HOST:PORT/cache` (the directory is a standard Nix file cache).
        nginx answers GET and HEAD only: uploads (`ferry cache push`, bundle
        imports), the agents' WebSocket and the operator API stay with the
        controller, and hosts list nginx's URL in `services.ferry-agent.substituters`.
        The controller then runs as the system user `ferry-controller` (also under
        /var/lib), and the nginx group gets, by ACL, passage through the data
        directory and read access to its `cache` folder only, not to the database
        or tokens; the file system must support POSIX ACLs (ext4, XFS, btrfs do)
      '';
      listenAddress = mkOption {
        type = types.str;
        default = "0.0.0.0:7080";
        example = "[::]:80";
        description = "HOST:PORT on which nginx serves the cache (plain HTTP; put TLS in front with your own virtual host if needed).";
      };
      virtualHost = mkOption {
        type = types.str;
        default = "ferry-cache";
        description = "Name of the `services.nginx.virtualHosts` entry this module defines; set more of its options there.";
      };
    };

    settings = mkOption {
      type = types.attrsOf (types.nullOr (types.either scalar (types.listOf scalar)));
      default = { };
      example = {
        publicUrl = "https://ferry.example.net";
        logLevel = "debug";
      };
      description = ''
        Further `ferry controller` command-line flags, camelCase: `fooBar = "x"`
        becomes `--foo-bar x`, `true` a bare `--foo-bar`, `false`/`null` nothing,
        and a list repeats the flag. The data directory and both listen
        addresses have their own options.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = listenPort != null;
        message = ''
          services.ferry-controller.listenAddress must be HOST:PORT, e.g. "0.0.0.0:7070"; got "${cfg.listenAddress}".
        '';
      }
      {
        assertion = portOf cfg.grpcListenAddress != null;
        message = ''
          services.ferry-controller.grpcListenAddress must be HOST:PORT, e.g. "127.0.0.1:7071"; got "${cfg.grpcListenAddress}".
        '';
      }
      {
        assertion = lib.all (d: d == null || isDuration d) [
          gc.every
          gc.minAge
        ];
        message = ''
          services.ferry-controller.cacheGc.every and cacheGc.minAge are durations such as "1d", "12h" or "90m";
          got every = ${builtins.toJSON gc.every}, minAge = ${builtins.toJSON gc.minAge}.
        '';
      }
      {
        assertion = lib.all (name: !(cfg.settings ? ${name})) reservedSettings;
        message = ''
          services.ferry-controller.settings must not set ${lib.concatStringsSep ", " reservedSettings}:
          use services.ferry-controller.dataDir / listenAddress / grpcListenAddress / database.
        '';
      }
      {
        assertion = (tls.certFile == null) == (tls.keyFile == null);
        message = ''
          services.ferry-controller.tls.certFile and tls.keyFile go together: set both (TLS) or neither (plaintext).
        '';
      }
      {
        assertion = !(isStorePath tls.keyFile);
        message = ''
          services.ferry-controller.tls.keyFile is in the Nix store (${toString tls.keyFile}), which every local user
          can read. Give the path of a file outside the store as a string, e.g. the key.pem of
          security.acme.certs.<name>.directory.
        '';
      }
      {
        assertion = tlsEnabled || (tls.clientCaFile == null && tls.agentClientCaFile == null);
        message = ''
          services.ferry-controller.tls.clientCaFile and tls.agentClientCaFile need TLS: set tls.certFile and tls.keyFile too.
        '';
      }
      {
        assertion = dataDirWellFormed;
        message = ''
          services.ferry-controller.dataDir must be an absolute path without "." or ".." components,
          trailing "/" or characters other than letters, digits and ._@+- (it is written unquoted
          into the unit); got "${dataDir}".
        '';
      }
      {
        assertion = cacheDirWellFormed;
        message = ''
          services.ferry-controller.cacheDir must be an absolute path outside the Nix store, without "." or ".."
          components, trailing "/" or characters other than letters, digits and ._@+-; got ${builtins.toJSON cfg.cacheDir}.
        '';
      }
      {
        assertion = !lib.hasPrefix "${builtins.storeDir}/" dataDir;
        message = ''
          services.ferry-controller.dataDir is in the Nix store, which is read-only; got "${dataDir}".
          Use a path such as /var/lib/ferry-controller (the default) or /srv/ferry.
        '';
      }
      {
        assertion = !lib.any under hiddenPrefixes;
        message = ''
          services.ferry-controller.dataDir must not be under ${lib.concatStringsSep ", " hiddenPrefixes}:
          the unit's sandbox (PrivateTmp, ProtectHome, DynamicUser) hides or empties those; got "${dataDir}".
          Use a path such as /var/lib/ferry-controller (the default) or /srv/ferry.
        '';
      }
      {
        assertion = !lib.elem dataDir sharedDirs;
        message = ''
          services.ferry-controller.dataDir is "${dataDir}", a directory other software shares; the
          controller needs one of its own (it is made mode 0700 for the controller's user), such as ${dataDir}/ferry.
        '';
      }
      {
        assertion = databaseUrlWellFormed;
        message = ''
          services.ferry-controller.database must be a postgres:// or postgresql:// URL,
          e.g. "postgres://ferry@db.example.net:5432/ferry"; got ${builtins.toJSON database}.
        '';
      }
      {
        assertion = !databaseUrlHasPassword;
        message = ''
          services.ferry-controller.database holds a password, which would be readable by every
          local user in the Nix store. Leave it out of the URL (postgres://USER@HOST:PORT/DB) and
          put it in services.ferry-controller.databasePasswordFile (pgpass format: *:*:*:USER:PASSWORD).
        '';
      }
      {
        assertion = cfg.databasePasswordFile == null || database != null;
        message = ''
          services.ferry-controller.databasePasswordFile is set but database is not: set database
          to the PostgreSQL URL, or leave out the password file (SQLite needs none).
        '';
      }
      {
        assertion = !(isStorePath cfg.databasePasswordFile) && !(isStorePath cfg.adminTokenFile);
        message = ''
          services.ferry-controller.databasePasswordFile and adminTokenFile must not be in the Nix store,
          which every local user can read; give the path of a file outside it as a string.
        '';
      }
      {
        assertion = !cfg.nginx.enable || nginxPort != null && nginxPort != listenPort;
        message = ''
          services.ferry-controller.nginx.listenAddress must be HOST:PORT on another port than listenAddress
          (the controller keeps that one), e.g. "0.0.0.0:7080"; got "${cfg.nginx.listenAddress}".
        '';
      }
    ];

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall (
      lib.filter (p: p != null) [
        listenPort
        (if cfg.nginx.enable then nginxPort else null)
      ]
    );

    services.nginx = lib.mkIf cfg.nginx.enable {
      enable = true;
      virtualHosts.${cfg.nginx.virtualHost} = {
        listen = [
          {
            addr = hostOf cfg.nginx.listenAddress;
            port = nginxPort;
          }
        ];
        locations."= /cache/nix-cache-info" = {
          alias = "${nixCacheInfo}";
          extraConfig = "default_type text/x-nix-cache-info;";
        };
        # Only the cache's own names: upload temp files and bundle staging
        # folders (dot-names) are never served.
        # Quoted: nginx reads an unquoted "{" as the start of the block.
        locations."~ \"^/cache/([0-9a-z]{32}\\.narinfo|nar/[0-9a-z]{52}\\.nar(\\.[a-z0-9]+)?)$\"" = {
          alias = "${cacheDir}/$1";
          extraConfig = ''
            limit_except GET { deny all; }
            types { text/x-nix-narinfo narinfo; }
            default_type application/x-nix-nar;
          '';
        };
        locations."/cache/".return = "404";
      };
    };

    environment.systemPackages = [ cfg.package ];

    users.users = lib.mkIf staticUser {
      ${user} = {
        isSystemUser = true;
        group = user;
        home = dataDir;
        description = "Ferry controller";
      };
    };
    users.groups = lib.mkIf staticUser { ${user} = { }; };

    systemd.tmpfiles.settings = lib.mkIf staticUser (
      {
        ferry-controller.${dataDir} = {
          d = {
            inherit user;
            group = user;
            mode = "0700";
          };
        }
        // lib.optionalAttrs cfg.nginx.enable {
          # Passage only: nginx can open the cache's files by name, list nothing here.
          "a+".argument = "group:${nginxGroup}:--x";
        };
      }
      // lib.optionalAttrs cfg.nginx.enable {
        # Files made later inherit the default entry; the controller creates
        # them group-readable (0644), so under a default ACL the umask does not
        # hide them from nginx. A+ also fixes files made before nginx was on.
        ferry-controller-nginx.${cacheDir} = {
          d = {
            inherit user;
            group = user;
            mode = "0700";
          };
          "A+".argument = "group:${nginxGroup}:r-X,default:group:${nginxGroup}:r-X";
        };
      }
    );

    systemd.services.ferry-controller = {
      description = "Ferry controller";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      # A PostgreSQL on the same machine is up before the controller connects.
      after = [
        "network-online.target"
      ]
      ++ lib.optional (database != null && (config.services.postgresql.enable or false)) "postgresql.service";

      # %, systemd's specifier character, is doubled (a socket path in a URL is percent-encoded).
      environment =
        lib.optionalAttrs (database != null) { FERRY_DATABASE_URL = lib.replaceStrings [ "%" ] [ "%%" ] database; }
        // lib.optionalAttrs (cfg.databasePasswordFile != null) { PGPASSFILE = "${credentialsDir}/pgpass"; };

      # Harmless if unused: lets the controller call the system's Nix tools.
      path = [ config.nix.package ];

      # The data directory may live on a file system mounted later (a data disk).
      unitConfig.RequiresMountsFor = [ dataDir ] ++ lib.optional (cfg.cacheDir != null) cfg.cacheDir;

      serviceConfig = {
        ExecStart = "${lib.getExe cfg.package} ${execArgs}";
        Restart = "on-failure";
        RestartSec = 5;

        # The SQLite database and the cache's NARs live in dataDir.
        WorkingDirectory = dataDir;
        UMask = "0077";
        # Every agent holds one WebSocket open.
        LimitNOFILE = 65536;

        AmbientCapabilities = lib.optional (privilegedPorts != [ ]) "CAP_NET_BIND_SERVICE";
        CapabilityBoundingSet = if privilegedPorts != [ ] then [ "CAP_NET_BIND_SERVICE" ] else "";
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        PrivateUsers = privilegedPorts == [ ];
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
        ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        RemoveIPC = true;
        LockPersonality = true;
        # MemoryDenyWriteExecute is left off on purpose: V8's JIT needs
        # writable+executable memory and Node would not start.
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
        ];
        # Refuse rather than kill on a filtered call.
        SystemCallErrorNumber = "EPERM";
      }
      // lib.optionalAttrs tlsEnabled {
        # SIGHUP: the controller re-reads its certificate files for new connections.
        ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
      }
      // lib.optionalAttrs (credentials != [ ]) {
        LoadCredential = credentials;
      }
      // lib.optionalAttrs (cfg.adminTokenFile != null) {
        ExecStartPre = lib.getExe installAdminToken;
      }
      // lib.optionalAttrs (tlsEnabled && tls.group != null) {
        SupplementaryGroups = [ tls.group ];
      }
      // (
        if staticUser then
          {
            User = user;
            Group = user;
            ReadWritePaths = [ dataDir ] ++ lib.optional (cfg.cacheDir != null) cfg.cacheDir;
          }
        else
          {
            DynamicUser = true;
            StateDirectory = stateDirectory;
            StateDirectoryMode = "0700";
          }
      );
    };
  };
}
