# Shared by every host of the example fleet. `environment` ("staging" or
# "production") comes from specialArgs in flake.nix.
{
  lib,
  pkgs,
  environment,
  ...
}:

let
  hello = pkgs.callPackage ./hello-service/package.nix { };
  helloPort = 8080;

  # Where the Ferry controller runs. Agents dial out to it; nothing connects
  # to the hosts. It serves TLS itself (services.ferry-controller.tls, here
  # with an ACME certificate), so the agent link is wss:// and the cache https://.
  controller = "ferry.example.net:7070";
in
{
  # --- Placeholder hardware: replace with your nixos-generate-config output.
  boot.loader.grub.device = "nodev";
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
  system.stateVersion = "25.05";

  # --- The application.
  systemd.services.hello = {
    description = "Example hello service (${environment})";
    wantedBy = [ "multi-user.target" ];
    after = [ "network.target" ];
    environment = {
      PORT = toString helloPort;
      FLEET_ENVIRONMENT = environment;
    };
    serviceConfig = {
      ExecStart = lib.getExe hello;
      DynamicUser = true;
      Restart = "on-failure";
    };
  };
  networking.firewall.allowedTCPPorts = [ helloPort ];

  # --- The Ferry agent.
  services.ferry-agent = {
    enable = true;
    controllerUrl = "wss://${controller}/agent";
    substituters = [ "https://${controller}/cache" ];
    # The certificate comes from a public CA, so the system trust store checks
    # it. With a CA of your own, give its certificate instead:
    #   caFile = ./ferry-ca.pem;
    # The public half of the key CI signs with (deploy.sh's FERRY_SIGNING_KEY_FILE):
    #   nix-store --generate-binary-cache-key ferry-fleet-1 cache.sec cache.pub
    # REPLACE this example value with the contents of cache.pub.
    trustedPublicKeys = [ "ferry-fleet-1:ZXhhbXBsZS1vbmx5LXJlcGxhY2Utd2l0aC15b3VyLWtleQ==" ];
    # Deployments must come with a deploy intent signed by the job that
    # decides (deploy.sh's FERRY_INTENT_KEY_FILE): the controller relays them
    # but cannot make up, alter or replay one. A key of its own:
    #   ferry keys generate --name ferry-fleet-intents-1 --out keys/
    # REPLACE this example value with the contents of keys/ferry-fleet-intents-1.public.
    intentPublicKeys = [ "ferry-fleet-intents-1:ZXhhbXBsZS1pbnRlbnQta2V5LXJlcGxhY2UtaXQtISE=" ];
    requireSignedIntents = true;
    # Provisioned once per host, outside the store (root-only, mode 0400).
    tokenFile = "/var/lib/ferry-secrets/agent-token";

    strategy = "trial";
    # Production gets longer to settle before the agent gives up and rolls back.
    confirmTimeout = if environment == "production" then 300 else 120;

    healthChecks = {
      systemd.units = [ "hello.service" ];
      http = [
        {
          url = "http://127.0.0.1:${toString helloPort}/healthz";
          bodyContains = "ok";
        }
      ];
    };
  };
}
