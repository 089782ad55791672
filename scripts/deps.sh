#!/usr/bin/env bash
# Installs the Debian packages grove runs on and its tests use, if any is missing.
# Sourced by up.sh and test.sh; safe to run again.
set -euo pipefail

packages=(
  # git serving, builds, the sandbox
  git bubblewrap tar dash util-linux ca-certificates
  # runtime images: language versions from other Debian releases
  mmdebstrap
  # data services run per environment
  mariadb-server mariadb-client postgresql redis-server rabbitmq-server memcached
  # copy-on-write volumes
  btrfs-progs
  # the backup store (grove-backup): deduplicated, compressed, encrypted repositories
  restic
  # the SSH gateway (grove runs its own sshd) and the tests' client
  openssh-server openssh-client
  # PHP apps: PHP-FPM behind nginx (grove-web's generated configuration) per instance
  nginx php8.2-fpm php8.2-cli
  # the extensions and the tool Magento-shaped projects use (the tests' PHP apps)
  php8.2-mysql php8.2-redis composer
  # runtimes the examples and tests use, and the tests' clients
  python3 python3-pip python3-venv python-is-python3 curl amqp-tools
  python3-pymysql python3-psycopg2 python3-redis python3-pika python3-pymemcache
)
# Node.js apps and their builds (npm); any Node.js the host already has will do.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "Installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
  # Grove runs its own instances of these servers per environment; the default
  # instances of the packages installed just now would only take memory (and
  # RabbitMQ's listens on every address). A server the host already had — its own SSH
  # server above all — is left as it was.
  for pair in mariadb-server:mariadb postgresql:postgresql redis-server:redis-server \
      rabbitmq-server:rabbitmq-server memcached:memcached nginx:nginx \
      php8.2-fpm:php8.2-fpm openssh-server:ssh; do
    package=${pair%%:*} service=${pair#*:}
    [[ " ${missing[*]} " == *" $package "* ]] || continue
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
      $sudo_cmd systemctl disable --now "$service" >/dev/null 2>&1 || true
    else
      $sudo_cmd service "$service" stop >/dev/null 2>&1 || true
    fi
  done
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "grove builds with Rust (cargo) 1.95 or newer: install it with rustup first." >&2
  exit 1
fi
