{
  description = "Ferry: a pull-based deployer for NixOS fleets";

  # No flake.lock is committed yet: this file was written on a machine without
  # network access. Run `nix flake lock` once to pin nixpkgs.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # A small NixOS system running both modules, for the evaluation checks.
      exampleSystem =
        system:
        lib.nixosSystem {
          inherit system;
          modules = [
            self.nixosModules.default
            {
              nixpkgs.overlays = [ self.overlays.default ];
              boot.loader.grub.enable = false;
              fileSystems."/" = {
                device = "none";
                fsType = "tmpfs";
              };
              system.stateVersion = "25.05";
              networking.hostName = "ferry-check";
              services.ferry-controller = {
                enable = true;
                openFirewall = true;
              };
              services.ferry-agent = {
                enable = true;
                controllerUrl = "ws://127.0.0.1:7070/agent";
                tokenFile = "/var/lib/ferry-secrets/agent-token";
                substituters = [ "http://127.0.0.1:7070/cache" ];
                trustedPublicKeys = [ "ferry-check-1:Y2hlY2stb25seS1ub3QtYS1yZWFsLWtleS0wMTIzNDU=" ];
                healthChecks.systemd.units = [ "ferry-controller.service" ];
              };
            }
          ];
        };
    in
    {
      overlays.default = final: _prev: { ferry = final.callPackage ./nix/package.nix { }; };

      packages = forAllSystems (pkgs: rec {
        ferry = pkgs.callPackage ./nix/package.nix { };
        default = ferry;
      });

      nixosModules = {
        agent = ./nix/modules/agent.nix;
        controller = ./nix/modules/controller.nix;
        default = {
          imports = [
            ./nix/modules/agent.nix
            ./nix/modules/controller.nix
          ];
        };
      };

      checks = forAllSystems (
        pkgs:
        let
          inherit (pkgs.stdenv.hostPlatform) system;
          example = exampleSystem system;
          units = example.config.systemd.units;
        in
        {
          package = self.packages.${system}.ferry;

          # Evaluates a whole NixOS system with both modules (which also runs
          # the modules' assertions, via the toplevel's drvPath) and checks
          # the generated unit files.
          modules =
            pkgs.runCommand "ferry-module-check"
              {
                toplevelDrv = builtins.unsafeDiscardStringContext example.config.system.build.toplevel.drvPath;
                agentUnit = units."ferry-agent.service".unit;
                controllerUnit = units."ferry-controller.service".unit;
              }
              ''
                agent=$agentUnit/ferry-agent.service
                controller=$controllerUnit/ferry-controller.service
                grep -q '^KillMode=process$' "$agent"
                grep -q '^LoadCredential=token:/var/lib/ferry-secrets/agent-token$' "$agent"
                grep -q '^ExecStart=.*/bin/ferry agent --config /nix/store/.*-ferry-agent.json$' "$agent"
                grep -q '^X-RestartIfChanged=false$' "$agent"
                # The rendered agent configuration passes the agent's own schema.
                config=$(sed -n 's/^ExecStart=.* --config //p' "$agent")
                ${lib.getExe self.packages.${system}.ferry} agent check-config --config "$config"
                grep -q '^DynamicUser=true$' "$controller"
                grep -q '^ExecStart=.*/bin/ferry controller --data-dir /var/lib/ferry-controller ' "$controller"
                echo "$toplevelDrv" > $out
              '';
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.nodejs_20
            pkgs.python3
          ];
        };
      });
    };
}
