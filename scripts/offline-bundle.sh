#!/usr/bin/env bash
# Builds one tarball that runs the bench and the densecl CLI on a Linux x86-64 host with no
# network and no Node (e.g. a GPU host): this machine's node binary (xz), the CLI and bench
# bundles, the linux-x64 native modules they load, Debian's Vulkan loader and libglvnd as .debs,
# scripts/*.py, and run.sh (scripts/offline-run.sh). README.md, "On a GPU host (offline)".
#   bash scripts/offline-bundle.sh [OUT.tar.gz]    default dist-offline/densecl-offline-linux-x64.tar.gz
# Needs Linux x86-64 with the npm packages installed and Debian bookworm's apt-get; the .debs and
# the compressed node are kept in dist-offline/cache/ (a rebuild without network uses them).
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=densecl-offline-linux-x64
OUT=${1:-dist-offline/$NAME.tar.gz}
CACHE=dist-offline/cache
DEBS=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
LIMIT_MIB=60

fail() { echo "offline-bundle: $*" >&2; exit 1; }

[ "$(uname -s)" = Linux ] && [ "$(node -p process.arch)" = x64 ] ||
  fail "this builds the Linux x86-64 bundle from the running node and its native modules; run it on Linux x86-64."
grep -qs 'VERSION_CODENAME=bookworm' /etc/os-release ||
  fail "the Vulkan loader and libglvnd .debs come from Debian bookworm's apt-get; run this on Debian 12 (bookworm)."

echo "offline-bundle: building dist/ and .build/bench/"
node scripts/build.mjs
node scripts/build.mjs --bench

# Staged outside the repository, so the module check below finds no other node_modules.
stage=$(mktemp -d "${TMPDIR:-/tmp}/densecl-offline.XXXXXX")
trap 'rm -rf "$stage"' EXIT
dir="$stage/$NAME"
mkdir -p "$dir/dist" "$dir/.build" "$dir/debs" "$dir/scripts" "$CACHE"

# xz -9 of a ~100 MB node binary takes a minute or two: done once per binary.
node_bin=$(node -p process.execPath)
node_xz="$CACHE/node-$(node -p process.version)-$(sha256sum "$node_bin" | cut -c1-16).xz"
if [ ! -f "$node_xz" ]; then
  echo "offline-bundle: compressing $node_bin (xz -9)"
  xz -9 -T0 -c "$node_bin" >"$node_xz.tmp"
  mv "$node_xz.tmp" "$node_xz"
fi
cp "$node_xz" "$dir/node.xz"

debs_cache="$CACHE/debs"
mkdir -p "$debs_cache"
download() { (cd "$debs_cache" && apt-get download -q "${DEBS[@]/%/:amd64}"); }
if ! download && ! { [ "$(id -u)" = 0 ] && apt-get update -q && download; }; then
  echo "offline-bundle: apt-get download failed (as root, 'apt-get update' may help); using the .debs in $debs_cache" >&2
fi
for p in "${DEBS[@]}"; do
  # The newest version in the cache.
  deb=$(ls "$debs_cache/${p}_"*_amd64.deb 2>/dev/null | sort -V | tail -n1)
  [ -n "$deb" ] || fail "no $p .deb in $debs_cache: 'apt-get download $p' must succeed once."
  cp "$deb" "$dir/debs/"
done

cp dist/cli.mjs dist/data-worker.mjs "$dir/dist/"
cp -r .build/bench "$dir/.build/bench"
cp scripts/*.py "$dir/scripts/"
cp scripts/offline-run.sh "$dir/run.sh"
chmod +x "$dir/run.sh"
node scripts/offline-modules.mjs "$dir"
{
  echo "densecl-webgpu offline bundle"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "node: $(node -p process.version) linux-x64"
  echo "debs: $(cd "$dir/debs" && echo *.deb)"
} >"$dir/VERSION"

mkdir -p "$(dirname "$OUT")"
tar -C "$stage" --owner=0 --group=0 --numeric-owner -cf - "$NAME" | gzip -9 >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"

size=$(stat -c %s "$OUT")
echo "offline-bundle: the largest files (uncompressed):"
find "$dir" -type f -printf '%s %P\n' | sort -rn | awk 'NR <= 8 { printf "  %6.1f MiB  %s\n", $1 / 1048576, $2 }'
awk -v s="$size" -v out="$OUT" 'BEGIN { printf "offline-bundle: wrote %s (%.1f MiB)\n", out, s / 1048576 }'
[ "$size" -le $((LIMIT_MIB * 1048576)) ] || fail "$OUT is larger than $LIMIT_MIB MiB."
