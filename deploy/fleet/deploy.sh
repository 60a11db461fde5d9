#!/usr/bin/env bash
# Build every host of the example fleet, push the closures to the Ferry cache,
# then deploy staging and, once staging is healthy, production.
#
#   ./deploy.sh                      all steps
#   ./deploy.sh build push           only some steps (CI runs them in separate jobs)
#   ./deploy.sh staging production
#
# Steps: build   nix build each host's toplevel; writes fleet-paths.txt (host env path)
#        push    ferry cache push, signed with $FERRY_SIGNING_KEY_FILE
#        staging / production   ferry rollout start for that environment (production --after staging),
#                each host's deploy intent signed with $FERRY_INTENT_KEY_FILE
#
# Environment:
#   FERRY_CONTROLLER        controller gRPC address over TLS, https://HOST:PORT (read by ferry)
#   FERRY_CA_FILE           CA that signed the controller's certificate, when it is
#                           not from a public CA (read by ferry; also used by nix copy)
#   FERRY_TOKEN_FILE        operator token file (read by ferry). Each step needs
#                           a scope: push cache:push; staging / production deploy
#                           (limited to that environment's tag and environment)
#                           and read. CI gives each job its own token; the admin
#                           token (DATA_DIR/admin.token) can run every step.
#   FERRY_SIGNING_KEY_FILE  secret cache-signing key (push step); its public half
#                           is services.ferry-agent.trustedPublicKeys
#   FERRY_INTENT_KEY_FILE   secret intent-signing key (staging and production
#                           steps), read by ferry rollout start; its public half
#                           is services.ferry-agent.intentPublicKeys
#   FERRY                   ferry command to use (default: `ferry` on PATH, else
#                           `nix run .#ferry --`)
#   FLEET_PATHS             manifest file (default: ./fleet-paths.txt)
set -euo pipefail

cd "$(dirname "$0")"

nix_() { nix --extra-experimental-features 'nix-command flakes' "$@"; }

if [[ -n "${FERRY:-}" ]]; then
  read -r -a ferry_cmd <<<"$FERRY"
elif command -v ferry >/dev/null; then
  ferry_cmd=(ferry)
else
  ferry_cmd=(nix --extra-experimental-features 'nix-command flakes' run .#ferry --)
fi
run_ferry() { "${ferry_cmd[@]}" "$@"; }

manifest=${FLEET_PATHS:-fleet-paths.txt}

step_build() {
  local tmp host env path
  tmp=$(mktemp)
  # "host environment" per line, from the flake's specialArgs.
  nix_ eval --raw .#nixosConfigurations --apply '
    configs: builtins.concatStringsSep "" (builtins.attrValues (builtins.mapAttrs
      (host: c: host + " " + c._module.specialArgs.environment + "\n") configs))' |
    while read -r host env; do
      echo "building $host ($env)" >&2
      path=$(nix_ build --no-link --print-out-paths \
        ".#nixosConfigurations.$host.config.system.build.toplevel")
      echo "$host $env $path"
    done >"$tmp"
  mv "$tmp" "$manifest"
  cat "$manifest"
}

need_manifest() {
  [[ -s "$manifest" ]] || {
    echo "deploy.sh: $manifest is missing or empty; run the build step first" >&2
    exit 1
  }
}

step_push() {
  need_manifest
  : "${FERRY_SIGNING_KEY_FILE:?set FERRY_SIGNING_KEY_FILE to the secret cache-signing key}"
  local paths
  mapfile -t paths < <(awk '{ print $3 }' "$manifest")
  run_ferry cache push "${paths[@]}" --signing-key-file "$FERRY_SIGNING_KEY_FILE"
}

# A rollout of one environment's hosts, from a JSON manifest written from the
# paths file ({"hosts": {HOST: PATH}}). --wait returns non-zero when the rollout
# aborts or a host fails to confirm (it has then rolled back), which stops this
# script before the next environment.
rollout_env() {
  local env=$1
  shift
  need_manifest
  local hosts json
  hosts=$(awk -v env="$env" '$2 == env { printf "%s%s", sep, $1; sep = "," }' "$manifest")
  if [[ -z "$hosts" ]]; then
    echo "deploy.sh: no $env hosts in $manifest" >&2
    return 0
  fi
  : "${FERRY_INTENT_KEY_FILE:?set FERRY_INTENT_KEY_FILE to the secret intent-signing key (hosts require signed intents)}"
  json=$(mktemp)
  awk 'BEGIN { printf "{\"hosts\": {" } { printf "%s\"%s\": \"%s\"", sep, $1, $3; sep = ", " } END { print "}}" }' "$manifest" >"$json"
  echo "rolling out to $env: $hosts" >&2
  run_ferry rollout start --manifest "$json" --hosts "$hosts" --environment "$env" --wait "$@"
  rm -f "$json"
}

# Staging all at once; production only after the same manifest completed on
# staging, prefetched everywhere first, then a canary and batches of a third,
# aborting at the first failure. A host that fails its checks rolls itself
# back; hosts already confirmed keep the new system: they require signed
# intents, and a revert the controller sends on abort carries none (sign a
# deploy of the previous system to go back).
step_staging() { rollout_env staging; }
step_production() {
  rollout_env production --after staging --canary 1 --batch 34% --max-unavailable 1 \
    --failure-threshold 1 --pause "${FERRY_WAVE_PAUSE:-2m}"
}

steps=("$@")
((${#steps[@]} > 0)) || steps=(build push staging production)
for step in "${steps[@]}"; do
  case "$step" in
    build | push | staging | production) "step_$step" ;;
    *)
      echo "deploy.sh: unknown step '$step' (build, push, staging, production)" >&2
      exit 2
      ;;
  esac
done
