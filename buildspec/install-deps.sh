#!/bin/sh
# install: the toolchain and libraries R's build needs, plus RLAYER_SYSTEM_PACKAGES (extra
# system packages a request names, e.g. for a package that links libxml2). dnf on Amazon
# Linux, apt-get on Debian/Ubuntu. Installs only what is missing, so it is cheap to repeat.
. "$(dirname -- "$0")/common.sh"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if command -v dnf >/dev/null 2>&1; then
  list="$BUILDSPEC_DIR/deps-dnf.txt"
  # shellcheck disable=SC2046 # one package name per line, validated words
  set -- $(grep -v -e '^#' -e '^$' "$list") ${RLAYER_SYSTEM_PACKAGES-}
  missing=""
  for p in "$@"; do rpm -q --whatprovides "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    log "dnf install$missing"
    # shellcheck disable=SC2086
    $SUDO dnf install -y -q --setopt=install_weak_deps=False $missing
  fi
elif command -v apt-get >/dev/null 2>&1; then
  list="$BUILDSPEC_DIR/deps-apt.txt"
  # shellcheck disable=SC2046
  set -- $(grep -v -e '^#' -e '^$' "$list") ${RLAYER_SYSTEM_PACKAGES-}
  missing=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    log "apt-get install$missing"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
  fi
else
  die "neither dnf nor apt-get found: install R's build dependencies by hand"
fi
if [ "$RLAYER_OPT_MODE" = bwrap ]; then
  command -v bwrap >/dev/null 2>&1 || die "bwrap (bubblewrap) is needed to build without writing /opt"
fi
log "build dependencies present"
