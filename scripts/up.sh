#!/usr/bin/env bash
# Builds grove, runs `grove server` in the background on ./grove-data, deploys the
# example app to a project `example` and prints its URL. Run it again to redeploy.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. scripts/deps.sh

cargo build --release -p grove
grove="$root/target/release/grove"
data="$root/grove-data"
mkdir -p "$data"
export GROVE_URL=http://127.0.0.1:8022

if [ -f "$data/server.pid" ] && kill -0 "$(cat "$data/server.pid")" 2>/dev/null; then
  echo "Restarting the running grove server (pid $(cat "$data/server.pid"))"
  kill "$(cat "$data/server.pid")"
  while kill -0 "$(cat "$data/server.pid")" 2>/dev/null; do sleep 0.1; done
fi
nohup "$grove" server --data-dir "$data" >"$data/server.log" 2>&1 &
echo $! >"$data/server.pid"
for _ in $(seq 1 100); do
  curl -s -o /dev/null "$GROVE_URL/api/projects" && break
  sleep 0.1
done
export GROVE_TOKEN=$(cat "$data/admin-token")

"$grove" project:list --format json | grep -q '"id": "example"' || "$grove" project:create example
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r examples/python-app/. "$work"
git -C "$work" init -q -b main
git -C "$work" add -A
git -C "$work" -c user.name=grove -c user.email=grove@localhost commit -q -m "Example app"
git -C "$work" push -f "http://grove:$GROVE_TOKEN@127.0.0.1:8022/example.git" main

url=$("$grove" environment:url -p example -e main --primary --pipe)
echo
echo "grove is running (pid $(cat "$data/server.pid"), log: $data/server.log)."
echo "The example environment answers at: $url"
curl -s "$url" | head -n 12
echo "..."
echo
echo "CLI:  export GROVE_TOKEN=\$(cat $data/admin-token); $grove environment:list -p example"
echo "Stop: kill \$(cat $data/server.pid)"
