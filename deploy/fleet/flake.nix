{
  description = "Example Ferry fleet: one staging host, two production hosts";

  # No flake.lock is committed: this example was written without network
  # access. Run `nix flake lock` once to pin the inputs.
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    # In your own fleet repository, point this at Ferry's repository instead.
    ferry.url = "path:../..";
    ferry.inputs.nixpkgs.follows = "nixpkgs";
  };

  outputs =
    {
      nixpkgs,
      ferry,
      ...
    }:
    let
      system = "x86_64-linux";

      # host name -> environment
      hosts = {
        web-staging-1 = "staging";
        web-prod-1 = "production";
        web-prod-2 = "production";
      };

      mkHost =
        hostName: environment:
        nixpkgs.lib.nixosSystem {
          inherit system;
          specialArgs = { inherit environment; };
          modules = [
            ferry.nixosModules.agent
            ./configuration.nix
            { networking.hostName = hostName; }
          ];
        };
    in
    {
      # deploy.sh reads each host's environment back from
      # nixosConfigurations.<host>._module.specialArgs.environment.
      nixosConfigurations = builtins.mapAttrs mkHost hosts;

      # The CLI CI uses: `nix run .#ferry -- …`.
      packages.${system}.ferry = ferry.packages.${system}.default;
    };
}
