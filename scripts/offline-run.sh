#!/usr/bin/env bash
# The run script of the offline bundle (scripts/offline-bundle.sh puts it in the tarball as run.sh):
# runs the bench and the densecl CLI on a Linux x86-64 host without Node and without network.
#   ./run.sh bench [SUITE...]     the benchmark suites (results in bench/results/ beside this script)
#   ./run.sh densecl ARGS...      the densecl program (e.g. `densecl mlp-demo`, `densecl pretrain ...`)
#   ./run.sh node ARGS...         the bundled node itself
#   ./run.sh vulkan-env           prints the library path and Vulkan driver settings it would use
#   ./run.sh measure OUT          the GPU measurements of the open issues, one suite after another,
#                                 each under its own time limit; reports, logs and tuning into OUT
# The first run unpacks node (python3's lzma module) and the Vulkan loader and libglvnd .debs
# (dpkg -x, no root needed) into .runtime/ beside this script; later runs reuse them.

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUNTIME="$HERE/.runtime"
LIBDIR="$RUNTIME/debs/usr/lib/x86_64-linux-gnu"
# Where NVIDIA's manifest may be outside the loader's default paths: /usr/local/nvidia, a driver
# root some GPU hosts use, and the usual folders, which the loader skips when XDG_* are set.
NVIDIA_ICD_DIRS=(/usr/local/nvidia/share/vulkan/icd.d /usr/local/nvidia/etc/vulkan/icd.d /etc/vulkan/icd.d
  /usr/share/vulkan/icd.d /usr/local/share/vulkan/icd.d /usr/local/etc/vulkan/icd.d /etc/xdg/vulkan/icd.d)
# Folders of the NVIDIA driver's libraries that are often not in the dynamic linker's cache.
NVIDIA_LIB_DIRS=(/usr/local/nvidia/lib64 /usr/local/nvidia/lib)

say() { echo "run.sh: $*" >&2; }
usage() { sed -n '4,9p' "${BASH_SOURCE[0]}" | sed 's/^# *//'; }

# Suite:seconds, most wanted first: they fit one 10-minute call on a lent GPU machine, so a suite
# that runs over loses only itself (MEASURE_STAGES replaces the list). SUITE@unsafe runs the suite
# with Dawn's allow_unsafe_apis (DENSECL_UNSAFE_APIS=1: subgroup matrices, where the adapter has
# them), its reports in OUT/bench-SUITE@unsafe; the plain run after it keeps the safe figures.
MEASURE_STAGES_DEFAULT="adapter:30 gpu:230 replay:70 contrastive:80 conv:75 matmul@unsafe:45 matmul:40"

# Runs each stage's command (the bench suite named by the stage, via "$@ SUITE") under its
# limit, logs to OUT/SUITE.log and appends "SUITE rc=N Ns (limit Ls)" to OUT/stages.txt.
# A failing or overrunning stage does not stop the others.
run_stages() {
  local out="$1" stage name secs t0 rc
  shift
  local suite results unsafe
  for stage in ${MEASURE_STAGES:-$MEASURE_STAGES_DEFAULT}; do
    name=${stage%%:*}
    secs=${stage##*:}
    suite=${name%@unsafe}
    results="$out/bench"
    unsafe=${DENSECL_UNSAFE_APIS:-}
    if [ "$suite" != "$name" ]; then
      results="$out/bench-$name"
      unsafe=1
    fi
    mkdir -p "$results"
    t0=$SECONDS
    rc=0
    BENCH_RESULTS_DIR="$results" DENSECL_UNSAFE_APIS="$unsafe" DENSECL_TUNE="${DENSECL_TUNE:-on}" \
      DENSECL_TUNE_CACHE="${DENSECL_TUNE_CACHE:-$out/tune.json}" \
      timeout -k 10 "$secs" "$@" "$suite" >"$out/$name.log" 2>&1 || rc=$?
    echo "$name rc=$rc $((SECONDS - t0))s (limit ${secs}s)" | tee -a "$out/stages.txt"
  done
}

# The folders the Vulkan loader searches for driver manifests when VK_DRIVER_FILES is unset
# (Vulkan-Loader docs, "Implementation Discovery on Linux"), in its order.
loader_icd_dirs() {
  local dirs d
  dirs="${XDG_CONFIG_HOME:-${HOME:+$HOME/.config}}:${XDG_CONFIG_DIRS:-/etc/xdg}:/etc"
  dirs="$dirs:${XDG_DATA_HOME:-${HOME:+$HOME/.local/share}}:${XDG_DATA_DIRS:-/usr/local/share:/usr/share}"
  local IFS=:
  for d in $dirs; do [ -n "$d" ] && echo "${d%/}/vulkan/icd.d"; done
  return 0
}

# The NVIDIA driver manifests in the given folders (a manifest naming an nvidia library, or named nvidia*).
nvidia_manifests() {
  local d f
  for d in "$@"; do
    for f in "$d"/*.json; do
      [ -f "$f" ] || continue
      case "${f##*/}" in nvidia*) echo "$f"; continue ;; esac
      grep -qi 'nvidia' "$f" && echo "$f"
    done
  done
  return 0
}

# Sets VK_DRIVER_FILES to NVIDIA's manifest when the loader would not find one on its own; says
# what to set when none exists anywhere. A driver choice the user made (VK_DRIVER_FILES,
# VK_ICD_FILENAMES or VK_ADD_DRIVER_FILES) is left as it is.
pick_vulkan_driver() {
  if [ -n "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}${VK_ADD_DRIVER_FILES:-}" ]; then return 0; fi
  local defaults found
  mapfile -t defaults < <(loader_icd_dirs)
  [ -n "$(nvidia_manifests "${defaults[@]}")" ] && return 0
  mapfile -t found < <(nvidia_manifests "${NVIDIA_ICD_DIRS[@]}")
  if [ ${#found[@]} -gt 0 ]; then
    export VK_DRIVER_FILES="${found[0]}"
    say "the Vulkan loader's default paths have no NVIDIA driver manifest; using VK_DRIVER_FILES=$VK_DRIVER_FILES"
    return 0
  fi
  say "no NVIDIA Vulkan driver manifest (nvidia_icd.json) in $(printf '%s\n' "${defaults[@]}" "${NVIDIA_ICD_DIRS[@]}" | sort -u | tr '\n' ' ')"
  say "  WebGPU uses whatever Vulkan driver the loader finds (on a host without a GPU: Mesa's lavapipe, on the CPU)."
  say "  On an NVIDIA host, set VK_DRIVER_FILES to the driver's manifest, e.g."
  say "  VK_DRIVER_FILES=/path/to/nvidia_icd.json $0 $*   (find it: find / -name 'nvidia_icd*.json' 2>/dev/null)"
}

# The folders put first on LD_LIBRARY_PATH: the unpacked Vulkan loader and libglvnd (without
# libglvnd, NVIDIA's Vulkan driver loads but cannot create an instance), then NVIDIA's own.
library_path() {
  local path="$LIBDIR" d
  for d in "${NVIDIA_LIB_DIRS[@]}"; do [ -d "$d" ] && path="$path:$d"; done
  echo "$path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

unpack_node() {
  [ -x "$RUNTIME/node" ] && return 0
  if ! command -v python3 >/dev/null; then
    say "python3 is needed once, to unpack node.xz (or unpack it yourself: xz -dc node.xz > $RUNTIME/node && chmod +x $RUNTIME/node)"
    exit 1
  fi
  mkdir -p "$RUNTIME"
  local tmp="$RUNTIME/node.$$"
  python3 -c '
import lzma, shutil, sys
with lzma.open(sys.argv[1]) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)' "$HERE/node.xz" "$tmp"
  chmod +x "$tmp"
  mv -f "$tmp" "$RUNTIME/node"
}

unpack_debs() {
  [ -e "$LIBDIR/libvulkan.so.1" ] && return 0
  if ! command -v dpkg >/dev/null; then
    say "dpkg is needed once, to unpack the Vulkan loader and libglvnd from debs/*.deb (no root needed)."
    say "  Without dpkg: mkdir -p $RUNTIME/debs, then for each .deb: ar x FILE.deb data.tar.xz && tar -xf data.tar.xz -C $RUNTIME/debs"
    exit 1
  fi
  mkdir -p "$RUNTIME"
  local tmp deb
  tmp=$(mktemp -d "$RUNTIME/debs.XXXXXX")
  for deb in "$HERE"/debs/*.deb; do dpkg -x "$deb" "$tmp"; done
  # Another run may have finished first; its copy is the same.
  mv -T "$tmp" "$RUNTIME/debs" 2>/dev/null || rm -rf "$tmp"
}

main() {
  set -euo pipefail
  local cmd="${1:-}"
  [ $# -gt 0 ] && shift
  case "$cmd" in
    bench | densecl | node | vulkan-env | measure) ;;
    "" | help | --help | -h) usage; exit 0 ;;
    *) say "unknown command '$cmd'"; usage; exit 2 ;;
  esac
  unpack_node
  unpack_debs
  pick_vulkan_driver "$cmd" "$@"
  export LD_LIBRARY_PATH
  LD_LIBRARY_PATH=$(library_path)
  case "$cmd" in
    bench) cd "$HERE" && exec "$RUNTIME/node" .build/bench/run.mjs "$@" ;;
    densecl) exec "$RUNTIME/node" "$HERE/dist/cli.mjs" "$@" ;;
    node) exec "$RUNTIME/node" "$@" ;;
    measure)
      [ $# -ge 1 ] || { say "measure needs an output folder: ./run.sh measure OUT"; exit 2; }
      local out
      out=$(mkdir -p "$1" && cd "$1" && pwd)
      cd "$HERE"
      run_stages "$out" "$RUNTIME/node" .build/bench/run.mjs
      ;;
    vulkan-env)
      echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
      echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
      local defaults
      mapfile -t defaults < <(loader_icd_dirs)
      echo "NVIDIA manifests: $(nvidia_manifests "${defaults[@]}" "${NVIDIA_ICD_DIRS[@]}" | sort -u | tr '\n' ' ')"
      ;;
  esac
}

# Sourced (by test/offline_run.test.ts), it only defines the functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
