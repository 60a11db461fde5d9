# The Ferry CLI (`ferry`), built from this repository with buildNpmPackage.
#
# Use with callPackage:  pkgs.callPackage ./nix/package.nix { }
#
# Dependencies come from nixpkgs' importNpmLock: one fetchurl per package,
# with the URL and hash that package-lock.json records (`resolved`,
# `integrity`). There is no aggregate hash to keep in step with the lock file;
# test/nix/lock.test.ts checks that every entry carries both.
{
  lib,
  buildNpmPackage,
  importNpmLock,
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

  # Whitelist: only what `npm install && npm run build` reads. Editing nix/,
  # deploy/, test/ or the READMEs does not change the derivation.
  src = fs.toSource {
    root = ../.;
    fileset = fs.difference (fs.unions [
      ../package.json
      ../package-lock.json
      ../.npmrc
      ../tsconfig.json
      ../packages
      ../proto
    ]) localBuildOutputs;
  };

  lock = lib.importJSON ../package-lock.json;

  # The workspace packages are `link: true` entries (node_modules/@ferry/core
  # -> packages/core). importNpmLock would turn each into a store copy of the
  # unbuilt sources, so that the build's `tsc -b` output in packages/*/dist
  # would never be seen through node_modules. Without those entries npm links
  # the workspaces itself, from the root package.json's `workspaces`, to the
  # folders it builds in.
  packageLock = lock // {
    packages = lib.filterAttrs (_: entry: !(entry.link or false)) lock.packages;
  };

  inherit ((lib.importJSON ../packages/cli/package.json)) version;
in
buildNpmPackage {
  pname = "ferry";
  inherit version src;

  nodejs = nodejs_20;
  npmDeps = importNpmLock {
    npmRoot = src;
    package = lib.importJSON ../package.json;
    inherit packageLock version;
  };
  npmConfigHook = importNpmLock.npmConfigHook;

  # Root script: `tsc -b packages/cli` (builds every workspace it references).
  npmBuildScript = "build";

  # The config hook installs with --ignore-scripts, then runs `npm rebuild`
  # with these flags: only better-sqlite3, a native addon that node-gyp
  # compiles (with python3, stdenv's C++ compiler and the hook's Node headers).
  # Building it from source skips its prebuilt-binary download, which would
  # fail in the sandbox. No other install script runs: @bufbuild/buf's and
  # esbuild's (dev tools, never in the output) check a platform binary and
  # fall back to downloading one; protobufjs's only prints a warning.
  npmRebuildFlags = [ "better-sqlite3" ];
  nativeBuildInputs = [
    python3
    makeWrapper
  ];
  env.npm_config_build_from_source = "true";

  # The default npm install hook packs the root package, which is a private
  # workspace root without a `bin`. Install the workspace layout by hand instead:
  # root node_modules (whose @ferry/* entries are relative symlinks into
  # packages/, and whose .bin/ferry points at packages/cli/bin) plus each
  # workspace's package.json, bin/ and compiled dist/.
  installPhase = ''
    runHook preInstall

    npm prune --omit=dev --no-save $npmInstallFlags "''${npmInstallFlagsArray[@]}" $npmFlags "''${npmFlagsArray[@]}"

    dest=$out/lib/ferry
    mkdir -p "$dest/packages" "$out/bin"
    cp -a package.json node_modules "$dest/"
    for dir in ${lib.escapeShellArgs workspaces}; do
      mkdir -p "$dest/packages/$dir"
      cp -a "packages/$dir/package.json" "$dest/packages/$dir/"
      for sub in bin dist node_modules; do
        if [ -e "packages/$dir/$sub" ]; then
          cp -a "packages/$dir/$sub" "$dest/packages/$dir/"
        fi
      done
    done

    test -f "$dest/packages/cli/dist/main.js"
    makeWrapper ${lib.getExe nodejs_20} "$out/bin/ferry" \
      --add-flags "$dest/packages/cli/dist/main.js"
    # The resident agent (`ferry agent` with the lean entry point): V8's
    # lite mode drops the optimising compilers, about 10 MiB of an idle
    # agent's memory. It also turns WebAssembly off, which the agent does not
    # use; saying so (--no-expose-wasm) keeps V8 from warning at every start.
    test -f "$dest/packages/cli/dist/agent-main.js"
    makeWrapper ${lib.getExe nodejs_20} "$out/bin/ferry-agent" \
      --add-flags "--lite-mode --no-expose-wasm $dest/packages/cli/dist/agent-main.js"

    runHook postInstall
  '';

  meta = {
    description = "Pull-based deployer for NixOS fleets (controller, agent and operator CLI)";
    mainProgram = "ferry";
    platforms = lib.platforms.linux;
  };
}
