#!/usr/bin/env bash
# Idempotent setup for a fresh Debian/Ubuntu machine with rustup: the C toolchain for the wasm
# guests, the pinned Rust toolchain with its wasm32-wasip1 target, and the Python venv with the
# official MCP SDK used by the integration tests. Safe to run again; does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# redis-server: the tests of the shared counter store start their own on loopback ports.
# curl and patch: the patched wasmtime and QuickJS below.
APT_PACKAGES=(clang-19 lld-19 llvm-19 libclang-rt-19-dev-wasm32 wasi-libc python3-venv redis-server curl patch)

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# rust-toolchain.toml pins the toolchain; a plain cargo build does not add missing targets.
if ! command -v rustup >/dev/null 2>&1; then
  echo "setup: rustup is required (https://rustup.rs)" >&2
  exit 1
fi
rustup toolchain install >/dev/null
rustup target add wasm32-wasip1 >/dev/null

# wasmtime 48.0.8 with our changes (patches/, applied in name order; DESIGN.md, "A patched
# wasmtime"): the crate from crates.io, checked against the checksum Cargo.lock had for it, then
# patched, in a directory named after a hash of the crate and the patches, which Cargo.toml's
# [patch.crates-io] names. A new patch means a new directory, so cargo builds it as a new
# package and never links a wasmtime built from other patches; the files keep the crate's fixed
# timestamps, so a fresh clone does not rebuild wasmtime in a warm target directory.
WASMTIME_CRATE=wasmtime-48.0.8
WASMTIME_SHA256=a2afcadb2e7d0417cb8f3f322c66eff49338b288f22290c0ca0bd3e9570732aa
WASMTIME_PATCHES=(patches/"$WASMTIME_CRATE"-*.patch)
wasmtime_hash=$( (echo "$WASMTIME_SHA256"; cat "${WASMTIME_PATCHES[@]}") | sha256sum | cut -c1-12)
wasmtime_dir=".tools/$WASMTIME_CRATE-$wasmtime_hash"
if ! grep -qF "wasmtime = { path = \"$wasmtime_dir\" }" Cargo.toml \
   || ! grep -qF "wasmtime = { path = \"../$wasmtime_dir\" }" fuzz/Cargo.toml; then
  echo "setup: the wasmtime patches changed: point [patch.crates-io] wasmtime in Cargo.toml at" \
    "\"$wasmtime_dir\" and in fuzz/Cargo.toml at \"../$wasmtime_dir\"" >&2
  exit 1
fi
if [ ! -f "$wasmtime_dir/.warden-patched" ]; then
  echo "setup: fetching $WASMTIME_CRATE from crates.io into $wasmtime_dir, applying ${WASMTIME_PATCHES[*]}"
  rm -rf .tools/"$WASMTIME_CRATE"* .tools/wasmtime-unpack
  mkdir -p .tools/wasmtime-unpack
  curl --fail --silent --show-error --location --retry 3 \
    --output ".tools/wasmtime-unpack/$WASMTIME_CRATE.crate" \
    "https://static.crates.io/crates/wasmtime/$WASMTIME_CRATE.crate"
  echo "$WASMTIME_SHA256  .tools/wasmtime-unpack/$WASMTIME_CRATE.crate" | sha256sum --check --quiet
  tar -xzf ".tools/wasmtime-unpack/$WASMTIME_CRATE.crate" -C .tools/wasmtime-unpack
  unpacked=".tools/wasmtime-unpack/$WASMTIME_CRATE"
  for wasmtime_patch in "${WASMTIME_PATCHES[@]}"; do
    patch --directory="$unpacked" --strip=1 --forward --quiet < "$wasmtime_patch"
  done
  find "$unpacked" -newer "$unpacked/Cargo.toml" -exec touch --reference="$unpacked/Cargo.toml" {} +
  touch "$unpacked/.warden-patched"
  mv "$unpacked" "$wasmtime_dir"
  rm -rf .tools/wasmtime-unpack
fi

# Bellard's QuickJS, release 2026-06-04, for the JavaScript guest (DESIGN.md, "The JavaScript
# guest"): its sources as the crates.io package hirofa-quickjs-sys 0.16.1 carries them
# (bellard/quickjs, whose VERSION and Changelog name that release; no registry the build reaches
# serves Bellard's own tarball to compare it with), checked against the package's checksum, with
# patches/quickjs-2026-06-04-*.patch applied, into .tools/quickjs; the guest's build.rs compiles
# them. The stamp names the package and the patches, so a changed patch unpacks afresh.
QUICKJS_CRATE=hirofa-quickjs-sys-0.16.1
QUICKJS_SHA256=27d0405f4ade508b49a0cde9ee59baaad60937a353ce9a7b7364fff66fbe7af8
QUICKJS_PATCHES=(patches/quickjs-2026-06-04-*.patch)
quickjs_stamp=$( (echo "$QUICKJS_SHA256"; cat "${QUICKJS_PATCHES[@]}") | sha256sum | cut -c1-12)
if [ "$(cat .tools/quickjs/.warden-patched 2>/dev/null)" != "$quickjs_stamp" ]; then
  echo "setup: fetching $QUICKJS_CRATE from crates.io into .tools/quickjs, applying ${QUICKJS_PATCHES[*]}"
  rm -rf .tools/quickjs .tools/quickjs-unpack
  mkdir -p .tools/quickjs-unpack
  curl --fail --silent --show-error --location --retry 3 \
    --output ".tools/quickjs-unpack/$QUICKJS_CRATE.crate" \
    "https://static.crates.io/crates/hirofa-quickjs-sys/$QUICKJS_CRATE.crate"
  echo "$QUICKJS_SHA256  .tools/quickjs-unpack/$QUICKJS_CRATE.crate" | sha256sum --check --quiet
  tar -xzf ".tools/quickjs-unpack/$QUICKJS_CRATE.crate" -C .tools/quickjs-unpack \
    "$QUICKJS_CRATE/bellard/quickjs"
  unpacked=".tools/quickjs-unpack/$QUICKJS_CRATE/bellard/quickjs"
  for quickjs_patch in "${QUICKJS_PATCHES[@]}"; do
    patch --directory="$unpacked" --strip=1 --forward --quiet < "$quickjs_patch"
  done
  echo "$quickjs_stamp" > "$unpacked/.warden-patched"
  mv "$unpacked" .tools/quickjs
  rm -rf .tools/quickjs-unpack
fi

# .venv holds componentize-py (builds the Python guest) and the Python MCP SDK (drives the
# real binary in the integration tests).
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import mcp, pytest, packaging' 2>/dev/null \
   || [ "$(.venv/bin/componentize-py --version 2>/dev/null)" != "componentize-py 0.25.1" ]; then
  echo "setup: creating .venv with componentize-py and the Python MCP SDK"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -r guest-runtimes/python/requirements.txt -r tests/python/requirements.txt
fi
# The wheels of the packages built into the Python guest (pinned and hash-checked; build.rs
# would fetch them too, but a build should not need the network).
.venv/bin/python scripts/python_guest.py fetch --requirements guest-runtimes/python/batteries.txt
# .tools holds Node 22 (from the npm registry, whatever Node the machine has) and the MCP
# conformance suite, both pinned; `make test` runs the suite against the HTTP server.
NODE_VERSION=22.23.3
CONFORMANCE_VERSION=0.2.0-alpha.12
if [ "$(.tools/node22/node_modules/.bin/node --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
  command -v npm >/dev/null 2>&1 || sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm
  echo "setup: installing Node $NODE_VERSION into .tools/node22"
  mkdir -p .tools/node22
  npm install --prefix .tools/node22 --no-audit --no-fund --silent "node@$NODE_VERSION"
fi
if [ "$(cat .tools/conformance/node_modules/@modelcontextprotocol/conformance/package.json 2>/dev/null \
      | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["version"])' 2>/dev/null)" \
   != "$CONFORMANCE_VERSION" ]; then
  echo "setup: installing @modelcontextprotocol/conformance $CONFORMANCE_VERSION into .tools/conformance"
  mkdir -p .tools/conformance
  PATH="$PWD/.tools/node22/node_modules/.bin:$PATH" \
    npm install --prefix .tools/conformance --no-audit --no-fund --silent \
    "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION"
fi
# The official reference MCP server, an upstream for the tools-from-code tests (over stdio).
EVERYTHING_VERSION=2026.8.31
if [ "$(cat .tools/everything/node_modules/@modelcontextprotocol/server-everything/package.json 2>/dev/null \
      | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["version"])' 2>/dev/null)" \
   != "$EVERYTHING_VERSION" ]; then
  echo "setup: installing @modelcontextprotocol/server-everything $EVERYTHING_VERSION into .tools/everything"
  mkdir -p .tools/everything
  PATH="$PWD/.tools/node22/node_modules/.bin:$PATH" \
    npm install --prefix .tools/everything --no-audit --no-fund --silent \
    "@modelcontextprotocol/server-everything@$EVERYTHING_VERSION"
fi
echo "setup: ok"
