#!/usr/bin/env bash
# A fresh Debian 12 (bookworm) root file system in a folder, for checks that need a clean machine: the
# field-engineer install (tools/check-install-chroot.sh) and the unit tests on arm64 under emulation
# (tools/check-arm64.sh). Not part of CI. Needs root, debootstrap, and for a foreign ARCH qemu-user-static
# with binfmt_misc (apt-get install debootstrap qemu-user-static binfmt-support).
#
# usage: sudo tools/debian-root.sh ARCH DIR [EXTRA_PACKAGES,...]     (ARCH: amd64, arm64)
# Does nothing when DIR already holds a root of that ARCH. Enter it with: tools/debian-root.sh --enter DIR CMD...
set -euo pipefail

if [ "${1:-}" = "--enter" ]; then  # run a command inside, with /proc, /sys, /dev, /run and DNS
  root=$2; shift 2
  mounts=(proc dev dev/pts)
  # The host's /sys under emulation describes the host's CPUs: LiteRT's cpuinfo then crashes (segmentation
  # fault) instead of falling back, so a foreign root gets no /sys.
  if [ "$(cat "$root/.debian-root-arch" 2>/dev/null)" = "$(dpkg --print-architecture)" ]; then mounts+=(sys); fi
  for fs in "${mounts[@]}"; do
    mountpoint -q "$root/$fs" || mount --bind "/$fs" "$root/$fs"
  done
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  # what an installed Debian has and debootstrap leaves out: localhost and this host's name
  grep -qs localhost "$root/etc/hosts" ||
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n' "$(hostname)" > "$root/etc/hosts"
  # the host's own CAs (a TLS-inspecting proxy's, say) so that apt, pip and git inside reach what the host does
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null &&
     ! cmp -s <(cat /usr/local/share/ca-certificates/*.crt) <(cat "$root"/usr/local/share/ca-certificates/*.crt 2>/dev/null); then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null 2>&1 || true
  fi
  trap 'for fs in dev/pts dev sys proc; do umount -l "$root/$fs" 2>/dev/null || true; done' EXIT
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 TERM=dumb "$@"
  exit $?
fi

arch=${1:?usage: debian-root.sh ARCH DIR [EXTRA_PACKAGES]}
root=${2:?usage: debian-root.sh ARCH DIR [EXTRA_PACKAGES]}
extra=${3:-}
if [ -x "$root/usr/bin/python3" ] && [ "$(cat "$root/.debian-root-arch" 2>/dev/null)" = "$arch" ]; then
  echo "debian-root: $root is already a $arch root" >&2
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debian-root: apt-get install debootstrap" >&2; exit 1; }
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable "qemu-$( [ "$arch" = arm64 ] && echo aarch64 || echo "$arch")" 2>/dev/null || true
fi
pkgs=ca-certificates,python3,python3-venv,python3-pip,openssl,procps${extra:+,$extra}
mkdir -p "$(dirname "$root")"
echo "debian-root: debootstrap $arch bookworm into $root (a few minutes)" >&2
debootstrap --arch="$arch" --variant=minbase --include="$pkgs" bookworm "$root" >"$root.log" 2>&1 ||
  { tail -20 "$root.log" >&2; exit 1; }
echo "$arch" > "$root/.debian-root-arch"
echo "debian-root: ready ($root)" >&2
