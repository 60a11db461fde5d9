export const USAGE = `ferry — pull-based deployments for NixOS fleets

Operator verbs (reach the controller by gRPC; --controller HOST:PORT or
FERRY_CONTROLLER, --token-file FILE or FERRY_TOKEN_FILE; each accepts --json):
  ferry host add NAME [--tag TAG]... [--token-out FILE]
  ferry host list
  ferry host remove NAME
  ferry cache push STOREPATH... [--signing-key-file KEY] [--cache-url URL]
  ferry deploy HOST=STOREPATH... [--wait] [--timeout SECONDS] [--mode switch|boot|test]
  ferry status [HOST]...

Local verbs:
  ferry keys generate --name NAME --out DIR
  ferry controller --data-dir DIR [--listen HOST:PORT] [--grpc-listen HOST:PORT] [--public-url URL]
  ferry agent --config FILE [--host-name NAME] [--controller-url URL] [--token-file FILE] [--state-dir DIR]
  ferry agent schema             print the agent configuration's JSON Schema
  ferry agent check-config --config FILE
  ferry agent gc --config FILE   delete generations beyond keepGenerations, then collect garbage

Errors print a stable code (E_...) and a one-line hint; exit status 1, or 2 for usage errors.
`;
