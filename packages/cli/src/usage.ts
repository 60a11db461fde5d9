import { MODES, MODE_SUMMARY } from "@ferry/core";

export const USAGE = `ferry — pull-based deployments for NixOS fleets

Operator verbs (reach the controller by gRPC; --controller HOST:PORT or
FERRY_CONTROLLER, --token-file FILE or FERRY_TOKEN_FILE; each accepts --json):
  ferry host add NAME [--tag TAG]... [--token-out FILE]
  ferry host list [--phase PHASE]... [--tag TAG]...
  ferry host remove NAME
  ferry cache push STOREPATH... [--signing-key-file KEY | --unsigned] [--cache-url URL] [--jobs N]
                                 key also from FERRY_SIGNING_KEY_FILE; pushing again adds signatures
  ferry cache rm STOREPATH...    remove paths no host's desired/current/previous system needs
  ferry deploy HOST=STOREPATH... [--mode MODE] [--ignore-windows] [--allow-unsigned] [--wait] [--timeout SECONDS]
        a host whose maintenance window is closed fetches now and activates when it opens;
        --ignore-windows activates at once (the result names those hosts)
  ferry status [HOST]... [--phase PHASE]... [--tag TAG]...
  ferry dry-activate HOST=STOREPATH [--timeout SECONDS]   what a switch would do on that host
  ferry rollout start [HOST=STOREPATH]... [--manifest FILE] [--hosts A,B] [--tag TAG]...
        [--environment ENV] [--after ENV] [--canary N|N%] [--batch N|N%] [--max-unavailable N]
        [--failure-threshold N|N%] [--min-executed N] [--pause DURATION | --gate]
        [--progress-deadline DURATION] [--prefetch-timeout DURATION] [--skip-unfetchable]
        [--rollback-on-abort] [--mode MODE] [--allow-unsigned] [--accept-failing-checks] [--wait] [--timeout SECONDS]
  ferry rollout status ID | list | pause ID | resume ID [--accept-failing-checks] | abort ID [--reason TEXT] | promote ID
  ferry window add (--host HOST | --tag TAG) --cron EXPR --duration DURATION [--timezone TZ]
  ferry window list | remove ID
  ferry bundle import FILE --trusted-key KEY... [--deploy] [--mode MODE] [--cache-url URL] [--no-local-verify] [--two-pass]
  ferry site inventory -o FILE   which paths the site's cache holds, for bundle create --since

Local verbs:
  ferry keys generate --name NAME --out DIR
  ferry controller --data-dir DIR [--listen HOST:PORT] [--grpc-listen HOST:PORT] [--public-url URL]
  ferry agent --config FILE [--host-name NAME] [--controller-url URL] [--token-file FILE] [--state-dir DIR]
  ferry agent schema             print the agent configuration's JSON Schema
  ferry agent check-config --config FILE   also refuses health checks this machine cannot run
  ferry agent gc --config FILE   delete generations beyond keepGenerations, then collect garbage
  ferry dev host --config FILE [--dir DIR]
                                 run an agent with a private /nix and /run, to try Ferry on one machine
  ferry agent apply-bundle FILE --config FILE [--host NAME] [--result FILE]
                                 verify a bundle, activate this host's system from it, no controller needed
  ferry bundle create --manifest HOSTS.json -o FILE --signing-key-file KEY [--since INVENTORY] [--sequence N]
        [--site NAME] [--expires-in DURATION|never]   (default 30d)
  ferry bundle verify FILE --trusted-key KEY...   check both signature layers and every hash
  ferry bundle inspect FILE      list a bundle's hosts and paths (verifies nothing)

MODE (how hosts activate; without --mode each host's own strategy, trial unless its config says otherwise):
${MODES.map((mode) => `  ${mode.padEnd(8)} ${MODE_SUMMARY[mode]}`).join("\n")}
  A rollout counts a host confirmed only once it runs the new system: in boot mode it waits for
  each host to reboot into it (bounded by --progress-deadline).

Errors print a stable code (E_...) and a one-line hint. Exit status: 0 success; 1 an error, a host
failed or the rollout aborted; 2 usage error; 3 (deploy --wait, rollout start --wait) done without
failure, but not every host runs the new system: the rollout skipped hosts (listed with the reason),
or hosts wait for their maintenance window.
`;
