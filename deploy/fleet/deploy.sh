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
#        staging / production   ferry deploy HOST=PATH … --wait for that environment
#
# Environment:
#   FERRY_CONTROLLER        controller gRPC address, HOST:PORT (read by ferry)
#   FERRY_TOKEN_FILE        operator token file (read by ferry)
#   FERRY_SIGNING_KEY_FILE  secret cache-signing key (push step); its public half
#                           is services.ferry-agent.trustedPublicKeys
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

# ferry deploy HOST=PATH … --wait, for every host of one environment. --wait
# returns non-zero when a host fails to confirm (it has then rolled back), which
# stops this script before the next environment.
deploy_env() {
  need_manifest
  local targets
  mapfile -t targets < <(awk -v env="$1" '$2 == env { print $1 "=" $3 }' "$manifest")
  if ((${#targets[@]} == 0)); then
    echo "deploy.sh: no $1 hosts in $manifest" >&2
    return 0
  fi
  echo "deploying $1: ${targets[*]}" >&2
  run_ferry deploy "${targets[@]}" --wait
}

# Production is a plain `ferry deploy` for now; `ferry rollout start --manifest`
# (waves, canaries, failure thresholds) will replace it.
step_staging() { deploy_env staging; }
step_production() { deploy_env production; }

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
