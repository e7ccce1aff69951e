#!/usr/bin/env bash
# Builds the Python base image from Debian packages, for machines that cannot pull
# python:3.11.7-slim-bookworm from Docker Hub (air-gapped builds, this project's CI):
#
#   debootstrap --variant=minbase bookworm  +  python3 python3-venv python-is-python3 ca-certificates
#
# then trims what a server never reads (docs, man pages, translations, apt's package
# lists and caches, logs) and imports the root filesystem as an image. Pass it to the
# Dockerfiles as their PYTHON_IMAGE build argument (`make images` does):
#
#   scripts/build-base-image.sh [IMAGE]        # default localhost/debian-python:3.11-bookworm
#   podman build --build-arg PYTHON_IMAGE=localhost/debian-python:3.11-bookworm -f transformer/Dockerfile .
#
# Debian's python3 is 3.11.2 (python:3.11.7-slim has 3.11.7): scripts/wheelhouse.sh
# resolves the wheels for exactly this interpreter. Kept: the ensurepip wheels
# (python3-venv needs them to create a virtualenv in the build stage; the runtime
# virtualenvs drop pip). Idempotent: an existing image is kept unless FORCE=1.
# Needs root (debootstrap), debootstrap and podman or docker; MIRROR overrides the Debian mirror.
set -euo pipefail
image=${1:-localhost/debian-python:3.11-bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
engine=${ENGINE:-$(command -v podman || command -v docker || true)}
[ -n "$engine" ] || { echo "build-base-image: neither podman nor docker is installed" >&2; exit 1; }

if [ "${FORCE:-0}" != 1 ] && "$engine" image inspect "$image" >/dev/null 2>&1; then
  echo "build-base-image: $image exists (FORCE=1 rebuilds it)"
  exit 0
fi
command -v debootstrap >/dev/null || apt-get -o DPkg::Lock::Timeout=600 install -y debootstrap

rootfs=$(mktemp -d /var/tmp/debian-python.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
  bookworm "$rootfs" "$mirror"

# What a server never reads. dpkg's own database stays, so the image still takes apt-get install.
rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
  "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/i18n/* "$rootfs"/usr/share/lintian \
  "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
  "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/root/.cache
# Later package installs keep docs and translations out too (as Docker's debian:slim images do).
cat > "$rootfs/etc/dpkg/dpkg.cfg.d/01-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
printf 'APT::Install-Recommends "false";\n' > "$rootfs/etc/apt/apt.conf.d/01-no-recommends"

version=$(chroot "$rootfs" python3 -c 'import platform; print(platform.python_version())')
tar --numeric-owner -C "$rootfs" -c . | "$engine" import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' \
  --message "debootstrap --variant=minbase bookworm + python3 $version" - "$image" >/dev/null
echo "build-base-image: $image (Python $version): $("$engine" image inspect --format '{{.Size}}' "$image") bytes"
