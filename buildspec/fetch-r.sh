#!/bin/sh
# Fetches R's source for RLAYER_R_VERSION into $WORK/src/R and checks it is that version.
# R_SOURCE: a local tarball (path or file://) or a URL, in which {version} stands for
# RLAYER_R_VERSION (one setting for many versions); default: CRAN's tarball.
. "$(dirname -- "$0")/common.sh"

major=${RLAYER_R_VERSION%%.*}
source_ref=${R_SOURCE:-https://cran.r-project.org/src/base/R-$major/R-$RLAYER_R_VERSION.tar.gz}
case "$source_ref" in
  *'{version}'*) source_ref="${source_ref%%\{version\}*}$RLAYER_R_VERSION${source_ref#*\{version\}}" ;;
esac
# gzip or xz (Debian ships R 4.6's source as .tar.xz): tar tells them apart by content.
tarball="$WORK/src/R-source.tar"
mkdir -p "$WORK/src"
case "$source_ref" in
  file://*) cp -- "${source_ref#file://}" "$tarball" ;;
  /*) cp -- "$source_ref" "$tarball" ;;
  http://* | https://*)
    log "downloading $source_ref"
    curl -fsSL --retry 3 -o "$tarball" -- "$source_ref" || die "cannot download R's source from $source_ref"
    ;;
  *) die "R_SOURCE must be a path, file:// or http(s):// URL" ;;
esac

rm -rf "$WORK/src/unpack" "$WORK/src/R"
mkdir -p "$WORK/src/unpack"
tar -xf "$tarball" -C "$WORK/src/unpack" || die "R's source does not unpack: $source_ref"
# One top directory (R-4.4.1/ from CRAN, R-patched/ from Debian), holding VERSION.
set -- "$WORK/src/unpack"/*
[ "$#" -eq 1 ] && [ -f "$1/VERSION" ] || die "R's source has no single top directory with VERSION: $source_ref"
found=$(head -n 1 "$1/VERSION" | cut -d' ' -f1)
[ "$found" = "$RLAYER_R_VERSION" ] || die "R's source is version $found, the build asks for $RLAYER_R_VERSION"
mv "$1" "$WORK/src/R"
rm -rf "$WORK/src/unpack" "$tarball"
log "R source $found ready"
