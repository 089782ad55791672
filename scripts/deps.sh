#!/usr/bin/env bash
# Installs the Debian packages grove runs on and its tests use, if any is missing.
# Sourced by up.sh and test.sh; safe to run again.
set -euo pipefail

packages=(git bubblewrap python3 python3-pip curl tar dash ca-certificates)
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
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "grove builds with Rust (cargo) 1.95 or newer: install it with rustup first." >&2
  exit 1
fi
