#!/usr/bin/env bash
# Proves edgeface on 64-bit Raspberry Pi OS (Debian bookworm arm64, Python 3.11) under qemu-user
# emulation, against the x86 results of this checkout. Correctness only: emulated timings are not
# Pi timings. Needs root (chroot, mounts), and on the host: mmdebstrap, qemu-user-static,
# binfmt-support (apt-get install mmdebstrap qemu-user-static binfmt-support), the checkout's
# .venv with models built (scripts/bootstrap.sh).
#
# Steps: (1) an arm64 bookworm rootfs, cached outside the checkout in $EDGEFACE_ARM64_CACHE
# (default ~/.cache/edgeface/arm64); (2) `pip install` of the checkout there, no TensorFlow;
# (3) `edgeface models export` on the host, `models import` and `models verify` in the rootfs;
# (4) `edgeface identify` on three still frames, names/bands equal and scores within 0.02 of x86;
# (5) the daemon on a 13 s composed clip with mosquitto, same events (scores within 0.02);
# (6) the unit tests there.
# Emulation facts: QEMU_CPU=cortex-a76 (Pi 5; cortex-a72 = Pi 4) because qemu's default `max` CPU
# has SME, which makes dynamic-range FaceNet output garbage; LiteRT reads /proc/cpuinfo and
# crashes on the host's x86 one, so an aarch64 one is bind-mounted in a private mount namespace
# (with /sys, where it reads the CPU lists).
# Everything emulated runs under `nice -n 19`, one step at a time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${EDGEFACE_ARM64_CACHE:-$HOME/.cache/edgeface/arm64}
rootfs=$cache/rootfs
export QEMU_CPU=${QEMU_CPU:-cortex-a76}
host_py=$root/.venv/bin/python
step() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }
die() { echo "test-arm64: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (chroot and mounts)"
for tool in mmdebstrap qemu-aarch64-static unshare; do
  command -v "$tool" >/dev/null || die "$tool missing: apt-get install mmdebstrap qemu-user-static binfmt-support"
done
[ -x "$host_py" ] || die "$host_py missing: run scripts/bootstrap.sh first"
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64 || die "cannot register qemu-aarch64 with binfmt_misc"
fi
mkdir -p "$cache"

step "rootfs: Debian bookworm arm64 in $rootfs"
if [ ! -e "$rootfs/.edgeface-complete" ]; then
  rm -rf "$rootfs.tmp"
  nice -n 19 mmdebstrap --arch=arm64 --variant=apt \
    --include=python3,python3-venv,python3-pip,mosquitto,ca-certificates \
    bookworm "$rootfs.tmp" http://deb.debian.org/debian
  touch "$rootfs.tmp/.edgeface-complete"
  rm -rf "$rootfs" && mv "$rootfs.tmp" "$rootfs"
fi

# An aarch64 /proc/cpuinfo for the CPU qemu emulates (LiteRT parses it).
v82="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
case $QEMU_CPU in
  cortex-a72*) part=0xd08 variant=0x0 revision=3 features="fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid" ;;
  cortex-a76*) part=0xd0b variant=0x4 revision=1 features=$v82 ;;
  *) die "QEMU_CPU=$QEMU_CPU: use cortex-a76 (Pi 5) or cortex-a72 (Pi 4)" ;;
esac
cpuinfo=$cache/cpuinfo-$QEMU_CPU
: >"$cpuinfo"
for n in 0 1 2 3; do
  cat >>"$cpuinfo" <<EOF
processor	: $n
BogoMIPS	: 108.00
Features	: $features
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: $variant
CPU part	: $part
CPU revision	: $revision

EOF
done
# pip inside the rootfs trusts what the host trusts (a proxy's CA, for instance).
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/edgeface-host-ca.crt"
cp /etc/resolv.conf "$rootfs/etc/resolv.conf" 2>/dev/null || true

# Run a command in the rootfs: private mount namespace with /proc, /dev and the fake cpuinfo.
in_arm() {
  nice -n 19 unshare -m --propagation private -- env -i \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU" PIP_CERT=/etc/edgeface-host-ca.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
    EDGEFACE_MODEL_CACHE=/opt/models PYTHONDONTWRITEBYTECODE=1 \
    https_proxy="${https_proxy:-}" http_proxy="${http_proxy:-}" no_proxy="${no_proxy:-}" \
    bash -c 'set -e
      mount -t proc proc "$0/proc"
      mount --bind "$1" "$0/proc/cpuinfo"
      mount --rbind /dev "$0/dev"
      mount -t sysfs sysfs "$0/sys"
      mount -t tmpfs tmpfs "$0/tmp"
      shift; exec chroot "$0" bash -c "cd /opt && $*"' "$rootfs" "$cpuinfo" "$@"
}

step "uname and CPU seen in the rootfs"
in_arm 'uname -m; python3 --version; grep -m1 "CPU part" /proc/cpuinfo'

step "install the checkout (tracked and new files of the working tree) with pip"
rm -rf "$rootfs/opt/src" && mkdir -p "$rootfs/opt/src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard \
  | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' \
  | tar --null -T - -cf -) | tar -C "$rootfs/opt/src" -xf -
in_arm '[ -x /opt/venv/bin/python ] || python3 -m venv /opt/venv
  pip install --quiet /opt/src pytest hypothesis jsonschema jinja2
  if python -c "import tensorflow" 2>/dev/null; then echo "TensorFlow is installed: not a device venv"; exit 1; fi
  pip list 2>/dev/null | grep -iE "^(ai-edge-litert|numpy|opencv-python-headless) "'

step "models: export on the host, import and verify on arm64 (no TensorFlow there)"
"$host_py" -m edgeface models export "$cache/bundle.tar"
cp "$cache/bundle.tar" "$rootfs/opt/bundle.tar"
rm -rf "$rootfs/opt/models"
in_arm 'edgeface models import /opt/bundle.tar && edgeface models verify'

step "scene: gallery, clip and stills composed on the host"
rm -rf "$cache/scene" && "$host_py" "$root/scripts/arm64_compare.py" scene "$cache/scene"
rm -rf "$rootfs/opt/scene" && cp -r "$cache/scene" "$rootfs/opt/scene"

step "identify: x86 vs arm64"
(cd "$cache/scene" && "$host_py" -m edgeface identify --json --gallery gallery stills/*.png) \
  >"$cache/identify-x86.json"
in_arm 'cd /opt/scene && edgeface identify --json --gallery gallery stills/*.png' \
  >"$cache/identify-arm64.json"
"$host_py" "$root/scripts/arm64_compare.py" compare identify \
  "$cache/identify-x86.json" "$cache/identify-arm64.json"

step "daemon on the clip with mosquitto: x86 vs arm64"
rm -rf "$cache/scene/state" "$rootfs/opt/scene/state"
"$host_py" "$root/scripts/arm64_compare.py" events "$cache/scene" "$cache/events-x86.json" >/dev/null
in_arm 'python /opt/src/scripts/arm64_compare.py events /opt/scene /opt/scene/events.json' >/dev/null
cp "$rootfs/opt/scene/events.json" "$cache/events-arm64.json"
"$host_py" "$root/scripts/arm64_compare.py" compare events \
  "$cache/events-x86.json" "$cache/events-arm64.json"

step "unit tests on arm64"
in_arm 'cd /opt/src && python -m pytest -q -p no:cacheprovider tests/unit'

step "arm64 ($QEMU_CPU): all passed"
