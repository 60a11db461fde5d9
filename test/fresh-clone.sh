#!/usr/bin/env bash
# Runs the README's two commands the way a newcomer would: in a fresh clone of
# this repository's committed HEAD, with an empty Nix configuration
# (NIX_CONF_DIR pointing at an empty directory), so that a set-up step this
# machine's own nix.conf or node_modules would hide shows up as a failure.
#   bash test/fresh-clone.sh            # npm test, then npm run demo
#   KEEP=1 bash test/fresh-clone.sh     # keep the clone for a look afterwards
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/ferry-fresh-XXXXXX)
cleanup() { if [ "${KEEP:-}" = 1 ]; then echo "fresh-clone: kept $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT

git clone --quiet "$src" "$work/ferry"
mkdir "$work/nix-conf"
export NIX_CONF_DIR="$work/nix-conf"
cd "$work/ferry"
echo "fresh-clone: $(git log -1 --format='%h %s') in $work/ferry, NIX_CONF_DIR=$NIX_CONF_DIR (empty)" >&2

start=$SECONDS
npm test
echo "fresh-clone: npm test passed in $((SECONDS - start)) s" >&2
start=$SECONDS
npm run demo
echo "fresh-clone: npm run demo passed in $((SECONDS - start)) s" >&2
[ -x node_modules/.bin/ferry ] || { echo "fresh-clone: node_modules/.bin/ferry is not linked" >&2; exit 1; }
