# The Ferry CLI (`ferry`), built from this repository with buildNpmPackage.
#
# Use with callPackage:  pkgs.callPackage ./nix/package.nix { }
{
  lib,
  buildNpmPackage,
  nodejs_20,
  python3,
  makeWrapper,
}:

let
  fs = lib.fileset;

  # Workspace folders under packages/ (protocol, core, controller, agent, cli).
  workspaces = builtins.attrNames (
    lib.filterAttrs (_: type: type == "directory") (builtins.readDir ../packages)
  );

  # Outputs of a local `npm install` / `npm run build` in the working tree:
  # never part of the source, the build recreates them.
  localBuildOutputs = fs.unions (
    lib.concatMap (name: [
      (fs.maybeMissing (../packages + "/${name}/dist"))
      (fs.maybeMissing (../packages + "/${name}/node_modules"))
    ]) workspaces
    ++ [ (fs.fileFilter (file: file.hasExt "tsbuildinfo") ../packages) ]
  );

  # Whitelist: only what `npm ci && npm run build` reads. Editing nix/, deploy/,
  # test/ or the READMEs does not change the derivation.
  source = fs.difference (fs.unions [
    ../package.json
    ../package-lock.json
    ../tsconfig.json
    ../packages
    ../proto
  ]) localBuildOutputs;

  # PLACEHOLDER, not the real hash. Compute the real one from the lock file with
  #   prefetch-npm-deps package-lock.json
  # (`nix run nixpkgs#prefetch-npm-deps -- package-lock.json`), or build once and
  # copy the "got: sha256-…" value from the hash-mismatch error. Update it every
  # time package-lock.json changes.
  npmDepsHashPlaceholder = lib.fakeHash;
in
buildNpmPackage {
  pname = "ferry";
  inherit ((lib.importJSON ../packages/cli/package.json)) version;

  src = fs.toSource {
    root = ../.;
    fileset = source;
  };

  nodejs = nodejs_20;
  npmDepsHash = npmDepsHashPlaceholder;

  # Root script: `tsc -b packages/cli` (builds every workspace it references).
  npmBuildScript = "build";

  # better-sqlite3 is a native addon compiled by node-gyp during `npm rebuild`
  # (the config hook installs with --ignore-scripts, then rebuilds). node-gyp
  # needs python3 and the C++ compiler from stdenv. Build from source directly:
  # its prebuilt-binary download would fail in the sandbox anyway.
  nativeBuildInputs = [
    python3
    makeWrapper
  ];
  env.npm_config_build_from_source = "true";

  # The default npm install hook packs the root package, which is a private
  # workspace root without a `bin`. Install the workspace layout by hand instead:
  # root node_modules (whose @ferry/* entries are relative symlinks into
  # packages/) plus each workspace's package.json and compiled dist/.
  installPhase = ''
    runHook preInstall

    npm prune --omit=dev --no-save $npmInstallFlags "''${npmInstallFlagsArray[@]}" $npmFlags "''${npmFlagsArray[@]}"

    dest=$out/lib/ferry
    mkdir -p "$dest/packages" "$out/bin"
    cp -a package.json node_modules "$dest/"
    for dir in ${lib.escapeShellArgs workspaces}; do
      mkdir -p "$dest/packages/$dir"
      cp -a "packages/$dir/package.json" "$dest/packages/$dir/"
      for sub in dist node_modules; do
        if [ -e "packages/$dir/$sub" ]; then
          cp -a "packages/$dir/$sub" "$dest/packages/$dir/"
        fi
      done
    done

    test -f "$dest/packages/cli/dist/main.js"
    makeWrapper ${lib.getExe nodejs_20} "$out/bin/ferry" \
      --add-flags "$dest/packages/cli/dist/main.js"

    runHook postInstall
  '';

  meta = {
    description = "Pull-based deployer for NixOS fleets (controller, agent and operator CLI)";
    mainProgram = "ferry";
    platforms = lib.platforms.linux;
  };
}
