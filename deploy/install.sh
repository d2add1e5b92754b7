#!/bin/sh
# Installs the packed sync server (the @syncline/core and @syncline/server tarballs beside
# this script, from `npm pack`) into the folder $1, production dependencies only. The
# Dockerfile runs it; so does test/packaging/deploy.test.ts, so the recipe cannot rot.
set -eu
dest="$1"
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$dest"
cd "$dest"
[ -f package.json ] || printf '{ "name": "syncline-server-deployment", "private": true, "allowScripts": { "better-sqlite3": true } }\n' > package.json
npm install --omit=dev --no-audit --no-fund "$here"/syncline-core-*.tgz "$here"/syncline-server-*.tgz
