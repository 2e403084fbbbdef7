# Warden: the README's two commands are `make serve` (set up, build, start the server on stdio)
# and `make test` (the whole test suite). Everything builds with the release profile so one warm
# target directory serves builds, tests, clippy and benchmarks.

CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
export WARDEN_BIN := $(CARGO_TARGET_DIR)/release/warden
# Tests share one guest cache so that only the first server start compiles the guests.
export WARDEN_TEST_CACHE_DIR := $(CARGO_TARGET_DIR)/warden-test-cache
PYTHON := .venv/bin/python

.PHONY: setup build dist serve test test-rust test-python test-conformance lint fmt bench bench-peers bench-packages bench-tasks clean
.PHONY: fuzz-setup fuzz-smoke fuzz

setup:
	@scripts/setup.sh

# `prepare` compiles the guests for this machine into the cache (~15 s, once per build), so
# that the server's first start takes milliseconds, not the seconds an MCP client may not wait.
build: setup
	cargo build --release --locked
	$(WARDEN_BIN) prepare

# A distributable binary: no debug info (symbols and line tables go to warden.debug, which a
# debugger, addr2line and Rust's own backtraces find through the binary's debuglink when it
# sits beside it).
DIST_DIR ?= $(CURDIR)/dist
dist: build
	mkdir -p $(DIST_DIR)
	objcopy --only-keep-debug $(WARDEN_BIN) $(DIST_DIR)/warden.debug
	cd $(DIST_DIR) && objcopy --strip-all --add-gnu-debuglink=warden.debug $(WARDEN_BIN) warden
	@ls -l $(DIST_DIR)/warden $(DIST_DIR)/warden.debug

serve: build
	$(WARDEN_BIN) serve

test: build test-rust test-python test-conformance

# The library's tests include those of the fuzz targets' entry points (`sandbox::fuzzing`,
# compiled for the library's tests and the `fuzzing` feature only: never into the server).
test-rust:
	cargo test --release --locked

test-python:
	$(PYTHON) -m pytest tests/python -q -p no:cacheprovider

# The official MCP conformance suite against `warden serve --http`, for both protocol versions.
test-conformance:
	tests/conformance/run.sh

lint: setup
	cargo fmt --all -- --check
	cargo fmt --manifest-path fuzz/Cargo.toml -- --check
	python3 scripts/module_graph.py src
	cargo clippy --release --locked --all-targets -- -D warnings
	cargo clippy --release --locked --lib --features fuzzing -- -D warnings

fmt:
	cargo fmt --all
	cargo fmt --manifest-path fuzz/Cargo.toml

bench: build
	cargo bench --locked
	$(PYTHON) bench/startup.py
	$(PYTHON) bench/instance_rss.py --language python
	$(PYTHON) bench/instance_rss.py --language javascript
	$(PYTHON) bench/sessions.py
	$(PYTHON) bench/python_packages.py

# What each Python package of the default guest costs (a guest per package, served as users run it).
bench-packages: build
	$(PYTHON) bench/python_packages.py

# What a run costs as an MCP task against the same call answered in its request; cancellation;
# the memory of kept results (docs/benchmarks.md, "Tasks").
bench-tasks: build
	$(PYTHON) bench/tasks.py

# Warden against quickjs-emscripten, Pyodide, native rquickjs and CPython on the same programs,
# with ratios (bench/peers/README.md); its --markdown output is docs/benchmarks.md's section.
bench-peers: build
	$(PYTHON) bench/peers/run.py

clean:
	cargo clean

# Fuzzing (fuzz/README.md): cargo-fuzz on the nightly toolchain, with its own target directory
# outside the clone ($WARDEN_FUZZ_TARGET_DIR, default ~/.cache/warden-fuzz-target).
# `fuzz-smoke` (part of CI) runs every target for FUZZ_SMOKE_SECONDS; `fuzz` is the long
# campaign, FUZZ_SECONDS per target (FUZZ_TARGETS="a b" to pick some). A failure keeps its
# reproducer under fuzz/artifacts/<target>/ and fails the command.
FUZZ_SMOKE_SECONDS ?= 30
FUZZ_SECONDS ?= 3600
FUZZ_TARGETS ?=

fuzz-setup: setup
	@rustup run nightly rustc --version >/dev/null 2>&1 \
		|| rustup toolchain install nightly --profile minimal
	@cargo fuzz --version >/dev/null 2>&1 || env -u CARGO_TARGET_DIR cargo install cargo-fuzz --locked

fuzz-smoke: fuzz-setup
	cargo fmt --manifest-path fuzz/Cargo.toml -- --check
	FUZZ_FRESH_CORPUS=1 fuzz/run.sh $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

fuzz: fuzz-setup
	fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)
