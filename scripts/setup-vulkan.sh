#!/usr/bin/env bash
# Makes WebGPU work in Node on Linux: Dawn (npm package `webgpu`) needs a Vulkan driver. On a
# machine without a GPU that is Mesa's CPU driver (lavapipe), from Mesa 25 in Debian
# bookworm-backports; bookworm's own Mesa 22 lacks a feature Dawn requires.
# As root this installs what is missing; otherwise it prints the commands to run.
set -euo pipefail
cd "$(dirname "$0")/.."

probe() {
  [ -d node_modules/webgpu ] || return 1
  node --input-type=module -e "
    import { create, globals } from 'webgpu';
    Object.assign(globalThis, globals);
    const gpu = create([]);
    const a = await gpu.requestAdapter();
    if (!a) process.exit(1);
    const d = await a.requestDevice();
    d.destroy();
  " >/dev/null 2>&1
}

if [ "$(uname -s)" != "Linux" ]; then
  echo "setup: not Linux; Dawn uses the platform's own GPU API (Metal / D3D12), nothing to install."
  exit 0
fi
if probe; then
  echo "setup: a WebGPU adapter is available already."
  exit 0
fi

SOURCES=/etc/apt/sources.list.d/bookworm-backports.sources
CMDS=$(cat <<CMDS
cat > $SOURCES <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y -t bookworm-backports libvulkan1 mesa-vulkan-drivers
CMDS
)

if ! grep -qs 'bookworm' /etc/os-release; then
  echo "setup: this is not Debian bookworm; install a Vulkan loader (libvulkan1) and Mesa >= 25 (lavapipe) or your GPU's Vulkan driver with your package manager."
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup: no usable WebGPU adapter. Run these commands as root (or with sudo), then retry:"
  echo "$CMDS"
  exit 1
fi
# Reuse the mirror of the machine's existing entry when it names one.
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  mirror=$(grep -rhs '^URIs:' /etc/apt/sources.list.d/debian.sources | head -n1 | awk '{print $2}')
  mirror=${mirror:-http://deb.debian.org/debian}
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" > "$SOURCES"
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t bookworm-backports libvulkan1 mesa-vulkan-drivers
if probe; then
  echo "setup: WebGPU adapter ready (Mesa lavapipe)."
else
  echo "setup: packages installed but Dawn still finds no adapter; check 'vulkaninfo --summary' (package vulkan-tools)." >&2
  exit 1
fi
