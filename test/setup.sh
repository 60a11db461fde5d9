#!/usr/bin/env bash
# Installs what `npm test`, `npm run demo` and `npm run bench` need on a fresh
# Debian machine (with --bench also nginx-light and wrk, for the cache
# benchmark): Nix (Debian's nix-bin), iproute2 and util-linux for the
# simulated hosts, Chromium for the dashboard's browser test, PostgreSQL for
# the controller's PostgreSQL store tests, a C++ toolchain
# for better-sqlite3, and the npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nix-store >/dev/null 2>&1 || missing+=(nix-bin)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
# Only `npm run bench` compares against nginx and drives wrk; tests never need them.
if [ "${1:-}" = --bench ]; then
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
fi
# Only the dashboard's browser test drives Chromium (Debian's, through
# puppeteer-core; nothing is downloaded): installed when setup can, otherwise
# that one test is skipped and says why.
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    missing+=(chromium)
  else
    echo "setup: chromium missing, the dashboard's browser test will be skipped; to run it: apt-get install chromium" >&2
  fi
fi
# The controller's PostgreSQL store tests start throw-away clusters from
# Debian's server programs (test/harness/postgres.ts); without them those
# tests are skipped and say why.
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    missing+=(postgresql)
  else
    echo "setup: PostgreSQL missing, the PostgreSQL store tests will be skipped; to run them: apt-get install postgresql" >&2
  fi
fi
if [ ! -d node_modules ]; then
  command -v g++ >/dev/null 2>&1 || missing+=(g++)
  command -v make >/dev/null 2>&1 || missing+=(make)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: ${missing[*]} missing; run as root or install them: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]} from Debian" >&2
  if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    # Tests start their own clusters; the package's usual system cluster on
    # port 5432 would only be a server nobody asked for.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = off" >/etc/postgresql-common/createcluster.d/ferry-tests.conf
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Nix must build as root without build users, from whatever nix.conf is here.
bash test/setup-nix.sh

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
