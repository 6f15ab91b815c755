#!/usr/bin/env bash
# Build the real llama.cpp `llama-server` from the llama-cpp-python sdist's vendored source.
# Cached outside the checkout, so CI builds it once per machine. Prints the binary's path.
set -euo pipefail
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE="${LAUNCHER_CI_CACHE:-$HOME/.cache/launcher-ci}"
OUT="$CACHE/llama-server-$VERSION"
if [ -x "$OUT/bin/llama-server" ] && [ -f "$OUT/ggml-vocab-qwen2.gguf" ]; then
  echo "$OUT/bin/llama-server"; exit 0
fi
command -v cmake >/dev/null || { echo "cmake is missing: apt-get install -y cmake" >&2; exit 1; }
mkdir -p "$CACHE/src" "$OUT/bin"
SDIST="$CACHE/src/llama_cpp_python-$VERSION.tar.gz"
[ -f "$SDIST" ] || python3 -m pip download --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$CACHE/src" >&2
WORK="$CACHE/build-$VERSION"
rm -rf "$WORK"; mkdir -p "$WORK"
tar -xzf "$SDIST" -C "$WORK"
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
cmake --build "$WORK/build" --target llama-server -j "$(nproc)" >&2
cp "$WORK/build/bin/llama-server" "$OUT/bin/llama-server"
cp "$SRC/models/ggml-vocab-qwen2.gguf" "$OUT/ggml-vocab-qwen2.gguf"
# keep the gguf-py of the same llama.cpp for writing test models
rm -rf "$OUT/gguf-py"; cp -r "$SRC/gguf-py" "$OUT/gguf-py"
rm -rf "$WORK"
echo "$OUT/bin/llama-server"
