#!/usr/bin/env bash
# Install OpenPrimary on a Debian host without containers, from this checkout, as root:
#
#   apt-get install python3 python3-venv redis-server caddy
#   sudo deploy/install.sh [--site vote.example.org] [--email admin@example.org]
#
# It makes (and on a second run leaves as they are, or brings up to date):
#   - the system user `openprimary` (no login, no home but its data folder);
#   - /var/lib/openprimary (0700, the user's): the working and data folder;
#   - /opt/openprimary/venv: a virtualenv with exactly requirements/runtime.txt, every package
#     hash-checked (--require-hashes), then this project with --no-deps (nothing unlocked);
#   - /etc/openprimary/credentials/ (root's alone, 0700): passwords, keys and Redis URLs from
#     deploy/setup-secrets.sh (made once, never overwritten), and /etc/openprimary/openprimary.env
#     (0600), the settings to edit;
#   - the systemd units openprimary-serve.service and openprimary-remind@.service;
#   - if Redis is installed: /etc/redis/redis-openprimary.conf and its ACL and auth files, for
#     `systemctl enable --now redis-server@openprimary`;
#   - if Caddy is installed and --site is given: /etc/caddy/Caddyfile (the old one kept as
#     Caddyfile.before-openprimary) and Caddy's environment (a drop-in naming the site).
# It starts nothing: docs/runbook.md says what to edit, then what to start.
#
# OPENPRIMARY_ROOT=/some/dir puts everything under that folder instead of / and skips what
# needs the real system (the user, file owners, systemctl): the tests run it that way.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
checkout="$(dirname "$here")"
root="${OPENPRIMARY_ROOT:-}"
python="${PYTHON:-python3}"
site=""
email=""

usage() {
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    --site) site="${2:?--site needs a name, such as vote.example.org}"; shift 2 ;;
    --email) email="${2:?--email needs an address}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

real_system() { [ -z "$root" ]; }

say() { echo "install.sh: $*"; }

if real_system && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run it as root (sudo deploy/install.sh)" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  echo "install.sh: the lock is made for Python 3.11; set PYTHON=python3.11 (found: $("$python" -V 2>&1))" >&2
  exit 1
fi

# --- the user and its folder -------------------------------------------------------------
if real_system && ! id openprimary >/dev/null 2>&1; then
  useradd --system --user-group --no-create-home --home-dir /var/lib/openprimary \
    --shell /usr/sbin/nologin openprimary
  say "made the system user openprimary"
fi
install -d -m 0700 "$root/var/lib/openprimary"
if real_system; then
  chown openprimary:openprimary /var/lib/openprimary
fi

# --- the virtualenv, from the lock ----------------------------------------------------
venv="$root/opt/openprimary/venv"
install -d -m 0755 "$root/opt/openprimary"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
  say "made $venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet)
"${pip[@]}" install --require-hashes -r "$checkout/requirements/runtime.txt"
# A copy of the sources, so that the install does not depend on this checkout staying put.
src="$root/opt/openprimary/src"
rm -rf "$src.new"
install -d -m 0755 "$src.new"
cp -R "$checkout/pyproject.toml" "$checkout/README.md" "$checkout/ballots" "$checkout/bot" \
  "$checkout/channels" "$checkout/openprimary" "$src.new/"
find "$src.new" -name __pycache__ -prune -exec rm -rf {} +
rm -rf "$src"
mv "$src.new" "$src"
"${pip[@]}" install --no-deps --no-build-isolation --force-reinstall "$src"
install -m 0644 "$checkout/docs/runbook.md" "$root/opt/openprimary/runbook.md"
"$venv/bin/openprimary" --help > /dev/null
say "$venv/bin/openprimary is installed from the lock"

# --- settings and secrets ------------------------------------------------------------
install -d -m 0755 "$root/etc/openprimary"
OPENPRIMARY_REDIS_HOST=127.0.0.1 OPENPRIMARY_REDIS_PORT=6379 \
  "$here/setup-secrets.sh" "$root/etc/openprimary/credentials" | sed 's/^/install.sh: /'
env_file="$root/etc/openprimary/openprimary.env"
if [ ! -e "$env_file" ]; then
  install -m 0600 "$root/etc/openprimary/credentials/openprimary.env" "$env_file"
  say "wrote $env_file: edit it"
fi

# --- systemd units ---------------------------------------------------------------------
install -d -m 0755 "$root/etc/systemd/system"
for unit in openprimary-serve.service openprimary-remind@.service; do
  install -m 0644 "$here/systemd/$unit" "$root/etc/systemd/system/$unit"
done
if real_system && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi

# --- Redis, if installed ---------------------------------------------------------------
if [ -d "$root/etc/redis" ]; then
  conf="$root/etc/redis/redis-openprimary.conf"
  if [ ! -e "$conf" ]; then
    sed -e 's|^bind \* -::\*$|bind 127.0.0.1 -::1|' \
        -e 's|^aclfile .*|aclfile /etc/redis/openprimary-users.acl|' \
        -e 's|^include .*|include /etc/redis/openprimary-auth.conf|' \
        -e 's|^dir /data$|dir /var/lib/redis/openprimary|' \
        "$here/redis/redis.conf" > "$conf"
    install -m 0600 "$root/etc/openprimary/credentials/redis-users.acl" \
      "$root/etc/redis/openprimary-users.acl"
    install -m 0600 "$root/etc/openprimary/credentials/redis-auth.conf" \
      "$root/etc/redis/openprimary-auth.conf"
    install -d -m 0750 "$root/var/lib/redis/openprimary"
    if real_system; then
      chown redis:redis "$conf" /etc/redis/openprimary-users.acl \
        /etc/redis/openprimary-auth.conf /var/lib/redis/openprimary
      chmod 0640 "$conf"
    fi
    say "wrote $conf: systemctl enable --now redis-server@openprimary"
  fi
else
  say "no /etc/redis: install redis-server (Redis 7), then run this again"
fi

# --- Caddy, if installed and a site was named --------------------------------------------
if [ -n "$site" ]; then
  if [ -d "$root/etc/caddy" ]; then
    caddyfile="$root/etc/caddy/Caddyfile"
    if [ -e "$caddyfile" ] && ! grep -q OPENPRIMARY_SITE_ADDRESS "$caddyfile"; then
      cp -p "$caddyfile" "$caddyfile.before-openprimary"
    fi
    install -m 0644 "$here/Caddyfile" "$caddyfile"
    dropin="$root/etc/systemd/system/caddy.service.d"
    install -d -m 0755 "$dropin"
    {
      echo "# Written by OpenPrimary's deploy/install.sh: the site Caddy serves (deploy/Caddyfile)."
      echo "[Service]"
      echo "Environment=OPENPRIMARY_SITE_ADDRESS=$site"
      if [ -n "$email" ]; then echo "Environment=OPENPRIMARY_ACME_EMAIL=$email"; fi
    } > "$dropin/openprimary.conf"
    if real_system && [ -d /run/systemd/system ]; then
      systemctl daemon-reload
    fi
    say "Caddy will serve https://$site (systemctl restart caddy)"
  else
    say "no /etc/caddy: install caddy, then run this again with --site"
  fi
fi

say "done; next: docs/runbook.md, 'A host without containers'"
