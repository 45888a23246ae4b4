#!/bin/sh
# Installs the Debian packages rlayer needs (R for runtime tests, bubblewrap for the /opt
# sandbox, the toolchain that compiles R). Idempotent: installs only what is missing.
set -eu
PKGS="r-base-core r-cran-jsonlite bubblewrap zip unzip dpkg-dev gfortran build-essential \
libcurl4-openssl-dev zlib1g-dev libbz2-dev liblzma-dev libpcre2-dev libreadline-dev \
libdeflate-dev binutils file patchelf r-cran-digest curl mmdebstrap chromium-headless-shell"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
