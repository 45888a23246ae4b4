#!/bin/sh
# Prepares R's source and a file:// CRAN-like repository from Debian's source archive, for
# machines where CRAN cannot be reached. Idempotent: a second run only prints the values.
#
# Output (under ${RLAYER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rlayer}/sources):
#   R-<version>.tar         R's source as Debian ships it (the .orig tarball, gzip or xz),
#                           one per suite of R_SUITES: 4.2.2 (bookworm), 4.5.0 (trixie),
#                           4.6.1 (forky)
#   repo-<R version>/       a CRAN-like repository per R, from that R's suite:
#                           src/contrib/<pkg>_<version>.tar.gz + PACKAGES; repo/ is the
#                           default R's
#   env                     R_SOURCE (the default R's tarball), R_SOURCE_TEMPLATE
#                           (R-{version}.tar), RLAYER_LOCAL_R_VERSIONS, RLAYER_CRAN_REPO
#                           (read by rlayer.builders.sources)
#
# Every download is checked against the hash in the suite's signed Sources index (apt's
# own transport); a mismatch stops the script and leaves nothing under that name.
#
# apt runs with a private sources list and state directory inside the cache, so the
# machine's apt configuration is left as it is and no root is needed for this step.
set -eu

# The suites R's source comes from; the first one's R is the default (its packages build
# with every R here).
# SUITE or SUITE:PACKAGE_SUITE: forky's R 4.6.1 takes trixie's packages (forky's jsonlite
# is listed in its index but not downloadable).
R_SUITES="${RLAYER_R_SUITES:-bookworm trixie forky:trixie}"
MIRROR="${RLAYER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# jsonlite is the runtime loop's dependency; digest and base64enc carry compiled code;
# R6 is pure R. All are small.
PACKAGES="${RLAYER_LOCAL_PACKAGES:-r-cran-jsonlite r-cran-digest r-cran-base64enc r-cran-r6}"

CACHE="${RLAYER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rlayer}"
OUT="$CACHE/sources"
ENV_FILE="$OUT/env"

if [ -f "$ENV_FILE" ] && [ -f "$OUT/repo/src/contrib/PACKAGES" ]; then
  . "$ENV_FILE"
  if [ -f "$R_SOURCE" ] && [ "${RLAYER_LOCAL_R_SUITES-}" = "$R_SUITES" ] &&
    [ -n "${RLAYER_CRAN_REPO_TEMPLATE-}" ] && [ -n "${RLAYER_LOCAL_RELEASES-}" ]; then
    echo "local sources ready (cached):"
    echo "  --r-source $R_SOURCE"
    echo "  --repo     $RLAYER_CRAN_REPO"
    exit 0
  fi
fi

for tool in apt-get Rscript tar; do
  command -v "$tool" >/dev/null 2>&1 || { echo "local-sources: $tool is required" >&2; exit 1; }
done

mkdir -p "$OUT/apt/empty" "$OUT/download"
# One private list and index per suite: apt would otherwise pick the newest r-base of all.
use_suite() {
  APT_SUITE=$1
  mkdir -p "$OUT/apt/lists-$APT_SUITE/partial"
  cat >"$OUT/apt/$APT_SUITE.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $APT_SUITE main
EOF
  echo "local-sources: reading the $APT_SUITE source index"
  apt_private update >/dev/null
}

apt_private() {
  apt-get -q \
    -o Dir::Etc::SourceList="$OUT/apt/$APT_SUITE.list" \
    -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$OUT/apt/lists-$APT_SUITE" \
    -o Dir::Cache="$OUT/apt" \
    -o Debug::NoLocking=1 \
    -o APT::Sandbox::User="$(id -un)" \
    "$@"
}

# Only the upstream (.orig) tarballs are needed: they are what CRAN and R ship. Each is
# fetched through apt's own transport and checked against the hash in the signed index.
cd "$OUT/download"
fetch_orig() {
  # From an empty directory: apt leaves out of --print-uris what the current one holds.
  (cd "$OUT/apt/empty" && apt_private source --print-uris "$1" 2>/dev/null) | grep "^'.*\.orig\.tar\.[a-z]*' " |
    while read -r uri file _size hash; do
      uri=$(echo "$uri" | tr -d "'")
      if [ ! -f "$file" ]; then
        /usr/lib/apt/apt-helper download-file "$uri" "$file.part" "$hash" >/dev/null
        mv "$file.part" "$file"
      fi
      echo "$file"
    done
}

# Packages: Debian's orig tarballs are CRAN's (some with non-free files removed, +dfsg);
# repack each CRAN-style as <name>_<version>.tar.gz with the top directory <name>/.
# build_repo DIR: the packages of the current suite as a CRAN-like repository in DIR.
build_repo() {
  contrib="$1/src/contrib"
  rm -rf "$contrib" "$OUT/unpack"
  mkdir -p "$contrib"
  for src in $PACKAGES; do
    orig=$(fetch_orig "$src" | head -n 1)
    [ -n "$orig" ] || { echo "local-sources: no $src source in $APT_SUITE" >&2; exit 1; }
    mkdir -p "$OUT/unpack/$src"
    tar -C "$OUT/unpack/$src" -xf "$orig"
    desc=$(find "$OUT/unpack/$src" -maxdepth 2 -name DESCRIPTION | head -n 1)
    [ -n "$desc" ] || { echo "local-sources: no DESCRIPTION in $orig" >&2; exit 1; }
    name=$(sed -n 's/^Package:[[:space:]]*//p' "$desc" | head -n 1)
    version=$(sed -n 's/^Version:[[:space:]]*//p' "$desc" | head -n 1)
    [ -n "$name" ] && [ -n "$version" ] || { echo "local-sources: bad DESCRIPTION in $orig" >&2; exit 1; }
    mkdir -p "$OUT/unpack/pkgs"
    mv "$(dirname "$desc")" "$OUT/unpack/pkgs/$name"
    tar -C "$OUT/unpack/pkgs" -czf "$contrib/${name}_${version}.tar.gz" "$name"
    echo "  $name $version"
  done
  rm -rf "$OUT/unpack"
  Rscript --vanilla -e 'tools::write_PACKAGES(commandArgs(TRUE)[1], type = "source")' "$contrib"
}

# Each R with the packages of its own suite: package versions follow what R they need
# (bookworm's jsonlite 1.8.4 no longer installs on R 4.5, trixie's does).
r_versions=""
r_version=""
for entry in $R_SUITES; do
  r_suite=${entry%%:*}
  pkg_suite=${entry#*:}
  use_suite "$r_suite"
  echo "local-sources: fetching r-base ($r_suite)"
  r_orig=$(fetch_orig r-base | head -n 1)
  [ -n "$r_orig" ] || { echo "local-sources: no r-base source in $r_suite" >&2; exit 1; }
  # gzip (bookworm, trixie) or xz (forky): tar tells them apart by content.
  top=$(tar -tf "$r_orig" | head -n 1 | cut -d/ -f1)
  found=$(tar -xOf "$r_orig" "$top/VERSION" | head -n 1 | cut -d' ' -f1)
  case "$found" in
    [0-9]*.[0-9]*.[0-9]*) ;;
    *) echo "local-sources: cannot read R's version from $r_orig" >&2; exit 1 ;;
  esac
  cp "$r_orig" "$OUT/R-$found.tar.tmp"
  mv "$OUT/R-$found.tar.tmp" "$OUT/R-$found.tar"
  echo "  R $found"
  echo "local-sources: packages for R $found ($pkg_suite)"
  [ "$pkg_suite" = "$r_suite" ] || use_suite "$pkg_suite"
  build_repo "$OUT/repo-$found"
  r_versions="${r_versions:+$r_versions }$found"
  [ -n "$r_version" ] || r_version=$found
done
# A release feed of these versions (the r-hub rversions format), for the local stack's
# release check: a subscription rebuild can be tried offline.
printf '%s\n' $r_versions | awk 'BEGIN { printf "[" } { printf "%s{\"version\": \"%s\"}", (NR > 1 ? ", " : ""), $1 } END { print "]" }' \
  >"$OUT/releases.json"

# The default R's repository under its old name too (what --repo printed before).
rm -rf "$OUT/repo"
cp -r "$OUT/repo-$r_version" "$OUT/repo"

cat >"$ENV_FILE.tmp" <<EOF
R_SOURCE=$OUT/R-$r_version.tar
R_SOURCE_TEMPLATE=$OUT/R-{version}.tar
RLAYER_CRAN_REPO=file://$OUT/repo
RLAYER_CRAN_REPO_TEMPLATE=file://$OUT/repo-{version}
RLAYER_LOCAL_R_VERSION=$r_version
RLAYER_LOCAL_R_VERSIONS="$r_versions"
RLAYER_LOCAL_R_SUITES="$R_SUITES"
RLAYER_LOCAL_RELEASES=file://$OUT/releases.json
EOF
mv "$ENV_FILE.tmp" "$ENV_FILE"
. "$ENV_FILE"
echo "local sources ready (R $r_versions; default $r_version):"
echo "  --r-source $R_SOURCE"
echo "  --repo     $RLAYER_CRAN_REPO"
