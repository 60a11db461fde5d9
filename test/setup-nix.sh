#!/usr/bin/env bash
# Makes single-user Nix usable for the tests, whatever nix.conf it finds, and
# proves it by building one derivation.
#
# Debian's nix-bin installed without nix-setup-systemd leaves no nix.conf and no
# nixbld group, and Nix running as root then refuses every build
# ("the group 'nixbld' specified in 'build-users-group' does not exist").
# This script adds only the keys that are missing, never rewrites a key someone
# else set, and prints each line it added. It reads $NIX_CONF_DIR like Nix does,
# so `NIX_CONF_DIR=$(mktemp -d)` reproduces a fresh machine on a configured one.
set -euo pipefail

conf_dir="${NIX_CONF_DIR:-/etc/nix}"
conf="$conf_dir/nix.conf"
marker="# added by Ferry's test/setup.sh (single-user Nix as root, no build users)"

# True when nix.conf sets KEY itself (an `include` is not followed: Nix would
# follow it, but a key set there was set by someone else and we leave it be).
sets_key() {
  [ -f "$conf" ] && grep -Eq "^[[:space:]]*$1[[:space:]]*=" "$conf"
}

group_has_members() {
  local entry
  entry=$(getent group "$1" 2>/dev/null) || return 1
  [ -n "${entry##*:}" ]
}

added=()
want=()
if ! sets_key build-users-group && ! group_has_members nixbld; then
  want+=("build-users-group =")
fi
if ! sets_key sandbox; then
  want+=("sandbox = false")
fi

if [ ${#want[@]} -gt 0 ]; then
  mkdir -p "$conf_dir"
  {
    # Start on a fresh line even when the file does not end with one.
    if [ -s "$conf" ] && [ -n "$(tail -c 1 "$conf")" ]; then echo; fi
    grep -qxF "$marker" "$conf" 2>/dev/null || echo "$marker"
    printf '%s\n' "${want[@]}"
  } >>"$conf"
  added=("${want[@]}")
fi

for line in "${added[@]}"; do
  echo "setup: added '$line' to $conf" >&2
done

# Prove it: evaluate and build one fresh derivation (the nonce makes Nix build
# it now, under this configuration, instead of finding an earlier result).
probe=$(
  nix-build --no-out-link --quiet --option substituters '' --expr \
    "derivation { name = \"ferry-setup-probe\"; system = builtins.currentSystem; builder = \"/bin/sh\"; args = [ \"-c\" \"echo $$-$(date +%s%N) > \$out\" ]; }" \
    2>&1
) || {
  echo "setup: Nix cannot build with $conf:" >&2
  echo "$probe" | sed 's/^/  /' >&2
  if echo "$probe" | grep -q "build-users-group"; then
    echo "setup: fix: set 'build-users-group =' in $conf (single-user Nix as root), or create the nixbld group with build users" >&2
  elif echo "$probe" | grep -qi "sandbox"; then
    echo "setup: fix: set 'sandbox = false' in $conf" >&2
  else
    echo "setup: fix: make 'nix-build --expr' work as this user, then run npm test again" >&2
  fi
  exit 1
}
if [ ${#added[@]} -eq 0 ]; then
  echo "setup: Nix builds with $conf as it was (nothing changed)" >&2
fi
