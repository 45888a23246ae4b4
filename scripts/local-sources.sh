#!/bin/sh
# Prepares R's source and a file:// CRAN-like repository from Debian's source archive, for
# machines where CRAN cannot be reached. Idempotent: a second run only prints the values.
#
# Output (under ${RLAYER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rlayer}/sources):
#   R-<version>.tar.gz      R's source as Debian ships it (top directory R-patched/)
#   repo/src/contrib/       <pkg>_<version>.tar.gz + PACKAGES (tools::write_PACKAGES)
#   env                     R_SOURCE=... and RLAYER_CRAN_REPO=... (read by rlayer.builders.sources)
#
# apt runs with a private sources list and state directory inside the cache, so the
# machine's apt configuration is left as it is and no root is needed for this step.
set -eu

SUITE="${RLAYER_DEBIAN_SUITE:-bookworm}"
MIRROR="${RLAYER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# jsonlite is the runtime loop's dependency; digest and base64enc carry compiled code;
# R6 is pure R. All are small.
PACKAGES="${RLAYER_LOCAL_PACKAGES:-r-cran-jsonlite r-cran-digest r-cran-base64enc r-cran-r6}"

CACHE="${RLAYER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rlayer}"
OUT="$CACHE/sources"
ENV_FILE="$OUT/env"

if [ -f "$ENV_FILE" ] && [ -f "$OUT/repo/src/contrib/PACKAGES" ]; then
  . "$ENV_FILE"
  if [ -f "$R_SOURCE" ]; then
    echo "local sources ready (cached):"
    echo "  --r-source $R_SOURCE"
    echo "  --repo     $RLAYER_CRAN_REPO"
    exit 0
  fi
fi

for tool in apt-get Rscript tar; do
  command -v "$tool" >/dev/null 2>&1 || { echo "local-sources: $tool is required" >&2; exit 1; }
done

mkdir -p "$OUT/apt/lists/partial" "$OUT/apt/empty" "$OUT/download"
cat >"$OUT/apt/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main
EOF

apt_private() {
  apt-get -q \
    -o Dir::Etc::SourceList="$OUT/apt/sources.list" \
    -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$OUT/apt/lists" \
    -o Dir::Cache="$OUT/apt" \
    -o Debug::NoLocking=1 \
    -o APT::Sandbox::User="$(id -un)" \
    "$@"
}

echo "local-sources: reading the $SUITE source index"
apt_private update >/dev/null

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

echo "local-sources: fetching r-base"
r_orig=$(fetch_orig r-base | head -n 1)
[ -n "$r_orig" ] || { echo "local-sources: no r-base source in $SUITE" >&2; exit 1; }
top=$(tar -tzf "$r_orig" | head -n 1 | cut -d/ -f1)
r_version=$(tar -xzOf "$r_orig" "$top/VERSION" | head -n 1 | cut -d' ' -f1)
case "$r_version" in
  [0-9]*.[0-9]*.[0-9]*) ;;
  *) echo "local-sources: cannot read R's version from $r_orig" >&2; exit 1 ;;
esac
cp "$r_orig" "$OUT/R-$r_version.tar.gz.tmp"
mv "$OUT/R-$r_version.tar.gz.tmp" "$OUT/R-$r_version.tar.gz"

# Packages: Debian's orig tarballs are CRAN's (some with non-free files removed, +dfsg);
# repack each CRAN-style as <name>_<version>.tar.gz with the top directory <name>/.
contrib="$OUT/repo/src/contrib"
rm -rf "$contrib" "$OUT/unpack"
mkdir -p "$contrib"
for src in $PACKAGES; do
  orig=$(fetch_orig "$src" | head -n 1)
  [ -n "$orig" ] || { echo "local-sources: no $src source in $SUITE" >&2; exit 1; }
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

cat >"$ENV_FILE.tmp" <<EOF
R_SOURCE=$OUT/R-$r_version.tar.gz
RLAYER_CRAN_REPO=file://$OUT/repo
RLAYER_LOCAL_R_VERSION=$r_version
EOF
mv "$ENV_FILE.tmp" "$ENV_FILE"
. "$ENV_FILE"
echo "local sources ready (R $r_version):"
echo "  --r-source $R_SOURCE"
echo "  --repo     $RLAYER_CRAN_REPO"
