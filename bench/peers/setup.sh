#!/usr/bin/env bash
# Installs the peers of bench/peers/run.py (idempotent):
#   - quickjs-emscripten and Pyodide, pinned in package.json + package-lock.json, into
#     bench/peers/node_modules with `npm ci` under Node 22 (.tools/node22, from `make setup`);
#   - the native rquickjs runner (bench/peers/rquickjs), into <repo>/target/peers.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
node_bin="$root/.tools/node22/node_modules/.bin"
if [[ ! -x "$node_bin/node" ]]; then
  echo "setup.sh: no Node 22 at $node_bin (run 'make setup' first)" >&2
  exit 1
fi
export PATH="$node_bin:$PATH"

# npm ci wipes node_modules, so only run it when the lockfile changed since the last install.
stamp="$here/node_modules/.installed-lock"
if [[ ! -f "$stamp" ]] || ! cmp -s "$here/package-lock.json" "$stamp"; then
  echo "setup.sh: npm ci (Node $(node --version))" >&2
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
  cp "$here/package-lock.json" "$stamp"
fi

echo "setup.sh: cargo build rquickjs runner" >&2
(cd "$root" && cargo build --release --locked --quiet \
  --manifest-path bench/peers/rquickjs/Cargo.toml --target-dir "$root/target/peers")
