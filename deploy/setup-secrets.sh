#!/usr/bin/env bash
# Make the secrets a deployment needs, once: random passwords and keys, and the files built
# from them (the Redis ACL file, the Redis URLs each program uses, the Sentinels' file).
#
#   deploy/setup-secrets.sh [DIR]        DIR: where to put them (default: deploy/secrets)
#
# Safe to run again: a file that exists is never changed, so a secret is made once and kept.
# To change one (say a password that leaked), delete its file AND every file built from it
# (listed below), run this again, then restart Redis and OpenPrimary.
#
# What it writes (DIR is made mode 0700: only its owner can reach anything inside):
#   redis-{admin,serve,cli,replica,sentinel}-password, sentinel-password
#                         one random password each (48 hex digits)
#   secret-key            OPENPRIMARY_SECRET_KEY (64 hex digits): keep it out of backups,
#                         and never change it during an election
#   metrics-token         OPENPRIMARY_METRICS_TOKEN, the bearer token GET /metrics wants
#   telegram-webhook-secret  TELEGRAM_WEBHOOK_SECRET
#   twilio-auth-token, telegram-bot-token
#                         EMPTY: paste Twilio's auth token and the bot's token in (leave the
#                         Telegram one empty for an SMS-only election)
#   redis-users.acl       deploy/redis/users.acl with the passwords filled in
#   redis-auth.conf       deploy/redis/auth.conf likewise (the replicas' password)
#   sentinel.conf         deploy/redis/sentinel.conf likewise (compose.sentinel.yaml)
#   serve-redis-url, cli-redis-url        OPENPRIMARY_REDIS_URL for serve, and for remind and
#                                         the other commands (a user each: least privilege)
#   serve-redis-url.sentinel, cli-redis-url.sentinel   the same through the Sentinels
#   openprimary.env       the settings that are not secret, from deploy/openprimary.env.example:
#                         edit it (public URL, Twilio account and number...)
#
# Where Redis is, as the URLs name it (defaults suit deploy/compose.yaml):
#   OPENPRIMARY_REDIS_HOST (redis), OPENPRIMARY_REDIS_PORT (6379),
#   OPENPRIMARY_SENTINELS (sentinel-1:26379,sentinel-2:26379,sentinel-3:26379)
# deploy/install.sh runs this with OPENPRIMARY_REDIS_HOST=127.0.0.1 for a host's own Redis.
#
# The files in DIR are mode 0644 inside that 0700 directory: Docker Compose mounts each
# secret file as it is, and the programs in the containers run as their own users (Redis as
# uid 999, OpenPrimary as 10001), which must be able to read them.  On a host without
# containers, deploy/install.sh keeps DIR at /etc/openprimary/credentials, root's alone, and
# systemd hands each service only its own secrets (LoadCredential=).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${1:-$here/secrets}"
host="${OPENPRIMARY_REDIS_HOST:-redis}"
port="${OPENPRIMARY_REDIS_PORT:-6379}"
sentinels="${OPENPRIMARY_SENTINELS:-sentinel-1:26379,sentinel-2:26379,sentinel-3:26379}"

umask 022
mkdir -p "$dir"
chmod 0700 "$dir"

made=()

# random HEXDIGITS: that many random hex digits (letters and digits only: safe in a URL, a
# config file and a sed replacement alike).
random() {
  od -An -N "$(($1 / 2))" -tx1 /dev/urandom | tr -d ' \n'
}

# once NAME CONTENT...: write DIR/NAME from the command's output, unless it exists.
once() {
  local name="$1"
  shift
  if [ ! -e "$dir/$name" ]; then
    "$@" > "$dir/$name.tmp"
    chmod 0644 "$dir/$name.tmp"
    mv "$dir/$name.tmp" "$dir/$name"
    made+=("$name")
  fi
}

# fill TEMPLATE: the template with each CHANGE-ME-<name> of a secret made here replaced by
# that secret (every other line as it is).
fill() {
  local text name
  text="$(cat "$1")"
  for name in redis-admin-password redis-serve-password redis-cli-password \
              redis-replica-password redis-sentinel-password sentinel-password; do
    text="${text//CHANGE-ME-$name/$(cat "$dir/$name")}"
  done
  if grep -q "CHANGE-ME" <<< "$text"; then
    echo "setup-secrets: $1 has a placeholder this script does not fill" >&2
    return 1
  fi
  printf '%s\n' "$text"
}

for name in redis-admin-password redis-serve-password redis-cli-password \
            redis-replica-password redis-sentinel-password sentinel-password; do
  once "$name" random 48
done
once secret-key random 64
once metrics-token random 64
once telegram-webhook-secret random 48
once twilio-auth-token true
once telegram-bot-token true

once redis-users.acl fill "$here/redis/users.acl"
once redis-auth.conf fill "$here/redis/auth.conf"
once sentinel.conf fill "$here/redis/sentinel.conf"

url() { # url USER: the server's URL for that ACL user
  printf 'redis://openprimary-%s:%s@%s:%s/0\n' "$1" "$(cat "$dir/redis-$1-password")" "$host" "$port"
}
sentinel_url() { # sentinel_url USER: the URL through the Sentinels for that ACL user
  printf 'redis+sentinel://openprimary-%s:%s@%s/ballots?sentinel_password=%s\n' \
    "$1" "$(cat "$dir/redis-$1-password")" "$sentinels" "$(cat "$dir/sentinel-password")"
}
once serve-redis-url url serve
once cli-redis-url url cli
once serve-redis-url.sentinel sentinel_url serve
once cli-redis-url.sentinel sentinel_url cli
once openprimary.env cat "$here/openprimary.env.example"

if [ "${#made[@]}" -eq 0 ]; then
  echo "setup-secrets: $dir already has every file; nothing changed"
else
  echo "setup-secrets: made in $dir: ${made[*]}"
fi
for name in twilio-auth-token telegram-bot-token; do
  [ -s "$dir/$name" ] || echo "setup-secrets: $dir/$name is empty: paste the token in (if used)"
done
if grep -q "CHANGE-ME" "$dir/openprimary.env"; then
  echo "setup-secrets: edit $dir/openprimary.env: it still has CHANGE-ME placeholders"
fi
