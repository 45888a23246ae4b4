#!/bin/sh
# Prepares R's source and a file:// CRAN-like repository from Debian's source archive, for
# machines where CRAN cannot be reached. Idempotent: a second run only prints the values.
#
# Output (under ${RLAYER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rlayer}/sources):
#   R-<version>.tar         R's source as Debian ships it (the .orig tarball, gzip or xz),
#                           one per suite of R_SUITES: 4.2.2 (bookworm), 4.5.0 (trixie),
#                           4.6.1 (forky)
#   repo-<R version>/       a CRAN-like repository per R, from that R's suite:
#                           src/contrib/<pkg>_<version>.tar.gz + PACKAGES (with
#                           SystemRequirements), older suites' versions in Archive/;
#                           repo/ is the default R's
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

# The suites R's source comes from; the first one's R is the default.
R_SUITES="${RLAYER_R_SUITES:-bookworm trixie forky}"
# The suites packages come from, oldest first (forky's are listed in its index but many do
# not download).
PACKAGE_SUITES="${RLAYER_PACKAGE_SUITES:-bookworm trixie}"
HERE=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
MIRROR="${RLAYER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# jsonlite is the runtime loop's dependency; digest and base64enc carry compiled code;
# R6 is pure R. All are small, and the tests' default builds use them.
BASE_PACKAGES="r-cran-jsonlite r-cran-digest r-cran-base64enc r-cran-r6"
# A real-world set with its whole runtime and compile-time closure (Depends, Imports,
# LinkingTo): dplyr's tree, data.table (OpenMP), xml2 (libxml2), curl (libcurl), httr2,
# RSQLite, stringi (ICU), RPostgreSQL (libpq), yaml, logging, ranger (C++ via Rcpp).
WORLD_PACKAGES="r-cran-dplyr r-cran-cli r-cran-generics r-cran-glue r-cran-lifecycle
  r-cran-magrittr r-cran-pillar r-cran-rlang r-cran-tibble r-cran-tidyselect r-cran-vctrs
  r-cran-fansi r-cran-utf8 r-cran-pkgconfig r-cran-withr r-cran-httr2 r-cran-curl
  r-cran-openssl r-cran-askpass r-cran-sys r-cran-rappdirs r-cran-xml2 r-cran-rsqlite
  r-cran-bit64 r-cran-bit r-cran-blob r-cran-dbi r-cran-memoise r-cran-cachem r-cran-fastmap
  r-cran-plogr r-cran-cpp11 r-cran-rpostgresql r-cran-ranger r-cran-rcpp r-cran-matrix
  r-cran-lattice r-cran-rcppeigen r-cran-stringi r-cran-data.table r-cran-yaml r-cran-logging"
PACKAGES=$(echo ${RLAYER_LOCAL_PACKAGES:-$BASE_PACKAGES $WORLD_PACKAGES})
# Part of the cache check: a changed set rebuilds the repositories.
PACKAGE_SET=$({ printf '%s\n' "$PACKAGES $PACKAGE_SUITES"; cat "$HERE/select-packages.R"; } | cksum | cut -d' ' -f1)

CACHE="${RLAYER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rlayer}"
OUT="$CACHE/sources"
ENV_FILE="$OUT/env"

if [ -f "$ENV_FILE" ] && [ -f "$OUT/repo/src/contrib/PACKAGES" ]; then
  . "$ENV_FILE"
  if [ -f "$R_SOURCE" ] && [ "${RLAYER_LOCAL_R_SUITES-}" = "$R_SUITES" ] &&
    [ "${RLAYER_LOCAL_PACKAGE_SET-}" = "$PACKAGE_SET" ] &&
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
        /usr/lib/apt/apt-helper -o APT::Sandbox::User="$(id -un)" \
          download-file "$uri" "$file.part" "$hash" >/dev/null
        mv "$file.part" "$file"
      fi
      echo "$file"
    done
}

# Packages: Debian's orig tarballs are CRAN's (some with non-free files removed, +dfsg);
# repack each CRAN-style as <name>_<version>.tar.gz with the top directory <name>/, its
# DESCRIPTION beside it (what select-packages.R reads).
# unpack_suite: the packages of the current suite, repacked into $OUT/suites/<suite>/.
# Some listed sources 404 on the mirror: those are left out, said, and taken from another
# suite.
unpack_suite() {
  dest="$OUT/suites/$APT_SUITE"
  rm -rf "$dest" "$OUT/unpack"
  mkdir -p "$dest"
  missing=""
  for src in $PACKAGES; do
    orig=$(fetch_orig "$src" 2>/dev/null | head -n 1) || orig=""
    [ -n "$orig" ] && [ -f "$orig" ] || { missing="$missing ${src#r-cran-}"; continue; }
    mkdir -p "$OUT/unpack/$src"
    tar -C "$OUT/unpack/$src" -xf "$orig"
    desc=$(find "$OUT/unpack/$src" -maxdepth 2 -name DESCRIPTION | head -n 1)
    [ -n "$desc" ] || { echo "local-sources: no DESCRIPTION in $orig" >&2; exit 1; }
    name=$(sed -n 's/^Package:[[:space:]]*//p' "$desc" | head -n 1)
    version=$(sed -n 's/^Version:[[:space:]]*//p' "$desc" | head -n 1)
    [ -n "$name" ] && [ -n "$version" ] || { echo "local-sources: bad DESCRIPTION in $orig" >&2; exit 1; }
    mkdir -p "$OUT/unpack/pkgs"
    mv "$(dirname "$desc")" "$OUT/unpack/pkgs/$name"
    tar -C "$OUT/unpack/pkgs" -czf "$dest/${name}_${version}.tar.gz" "$name"
    cp "$OUT/unpack/pkgs/$name/DESCRIPTION" "$dest/${name}_${version}.DESCRIPTION"
    rm -rf "$OUT/unpack"
  done
  echo "  $(ls "$dest"/*.tar.gz | wc -l) packages from $APT_SUITE${missing:+ (not downloadable:$missing)}"
}

for suite in $PACKAGE_SUITES; do
  use_suite "$suite"
  echo "local-sources: package sources ($suite)"
  unpack_suite
done

# Each R gets a repository of its own: per package the newest version whose Depends: R it
# satisfies, from any suite (R 4.2.2 takes trixie's dplyr but bookworm's Matrix, since Matrix
# needs R >= 4.4 from 1.7 on), older satisfiable versions in Archive/.
r_versions=""
r_version=""
for r_suite in $R_SUITES; do
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
  set --
  for suite in $PACKAGE_SUITES; do set -- "$@" "$OUT/suites/$suite"; done
  rm -rf "$OUT/repo-$found.tmp"
  Rscript --vanilla "$HERE/select-packages.R" "$found" "$OUT/repo-$found.tmp" "$@"
  rm -rf "$OUT/repo-$found"
  mv "$OUT/repo-$found.tmp" "$OUT/repo-$found"
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
RLAYER_LOCAL_PACKAGE_SET=$PACKAGE_SET
RLAYER_LOCAL_RELEASES=file://$OUT/releases.json
EOF
mv "$ENV_FILE.tmp" "$ENV_FILE"
. "$ENV_FILE"
echo "local sources ready (R $r_versions; default $r_version):"
echo "  --r-source $R_SOURCE"
echo "  --repo     $RLAYER_CRAN_REPO"
