#!/usr/bin/env bash
# Debian packages some tests drive for real: Chromium (the browser test of the connection form),
# Redis (a rate limit shared across processes; the Celery broker of the deployment tier) and
# PostgreSQL (the deployment tier's metadata DB, tests/deployment). Installed when missing and this
# user can; otherwise those tests skip and say why.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system packages: installing ${missing[*]}" >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
else
  echo "system packages: ${missing[*]} not installed (needs root and apt-get); their tests will skip" >&2
fi
