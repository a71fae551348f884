#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` from the very source node-llama-cpp bundles
# (node_modules/node-llama-cpp/llama/gitRelease.bundle), so the peer in bench/peer.ts runs the
# same llama.cpp release as Pitcher's engine. CPU only, no HTTPS/curl, release build of the
# `llama-server` target only. Takes ~25 minutes on 2 quiet cores: never run it in CI.
#
#   bash bench/buildLlamaServer.sh            # -> $PITCHER_PEER_DIR/build/bin/llama-server
#   PITCHER_PEER_DIR=/tmp/peer bash bench/buildLlamaServer.sh
#   PITCHER_PEER_JOBS=1 nice -n 19 bash bench/buildLlamaServer.sh
#
# Idempotent: an existing clone is reused and cmake/ninja rebuild only what changed, so a build
# that was interrupted resumes where it stopped.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
llama_dir="$repo_root/node_modules/node-llama-cpp/llama"
bundle="$llama_dir/gitRelease.bundle"
peer_dir="${PITCHER_PEER_DIR:-$repo_root/.pitcher-cache/llama-server}"
jobs="${PITCHER_PEER_JOBS:-$(nproc)}"
src="$peer_dir/src"
build="$peer_dir/build"

[[ -f "$bundle" ]] || { echo "no llama.cpp bundle at $bundle" >&2; exit 1; }
mkdir -p "$peer_dir"

if [[ ! -d "$src/.git" ]]; then
  # Same steps as node-llama-cpp's cloneLlamaCppRepo.js: clone the local bundle, drop the remote.
  rm -rf "$src"
  git clone --quiet "$bundle" "$src"
  git -C "$src" remote remove origin || true
  # node-llama-cpp applies its bundled patches before compiling (applyLlamaCppRepoPatches.js);
  # apply them too so both sides run the same code. A patch that no longer applies is reported.
  for patch in "$llama_dir"/patches/*.diff; do
    [[ -f "$patch" ]] || continue
    if git -C "$src" apply --check "$patch" 2>/dev/null; then
      git -C "$src" apply "$patch" && echo "applied $(basename "$patch")"
    else
      echo "warning: $(basename "$patch") does not apply; building without it" >&2
    fi
  done
fi
echo "llama.cpp $(git -C "$src" rev-parse HEAD) (node-llama-cpp release $(sed -n 's/.*"tag": *"\([^"]*\)".*/\1/p' "$llama_dir/llama.cpp.info.json"))"

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
# GGML_NATIVE=ON (llama.cpp's default) builds for this very CPU: the peer gets llama.cpp's best
# speed here, which is what the single-stream target compares against. Router mode needs
# LLAMA_SUBPROCESS (on by default where supported). LLAMA_CURL is deprecated in this release;
# LLAMA_OPENSSL=OFF is what drops the HTTPS client.
cmake -S "$src" -B "$build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE=ON \
  -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF \
  -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON
cmake --build "$build" --target llama-server --config Release -j "$jobs"
echo "built $build/bin/llama-server"
