#!/usr/bin/env bash
# Installs a container engine when none is present: Debian's podman with Debian's runc
# (crun, podman's default OCI runtime, fails on hosts with hybrid cgroups). Idempotent.
set -euo pipefail
if command -v podman >/dev/null && command -v runc >/dev/null; then exit 0; fi
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-engine: no container engine, and not root on Debian: install podman and runc (or docker)" >&2
  exit 0  # the image tests then skip, saying why
fi
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq podman runc debootstrap
