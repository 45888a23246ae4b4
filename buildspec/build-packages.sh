#!/bin/sh
# build: the packages layer (packages/library + the shared libraries it adds to lib/),
# compiled against the runtime layer's R at /opt/R.
. "$(dirname -- "$0")/common.sh"

if [ -z "${RLAYER_PACKAGES-}" ]; then
  log "no packages requested: no packages layer"
  exit 0
fi
started=$(now)
[ -x "$OPT/R/bin/Rscript" ] || die "no runtime at $OPT/R: the runtime step did not run"
rm -rf "$OPT/packages"
mkdir -p "$OPT/packages/library"

log "installing $RLAYER_PACKAGES from $CRAN_REPO"
# R_ENABLE_JIT=0: the runtime stores tools without byte code (prune.sh), and R's JIT would
# compile its installer's functions anew in every R CMD INSTALL (~1 s a package). Packages
# are still byte-compiled as they install: that is R CMD INSTALL's own step, not the JIT.
R_ENABLE_JIT=0 RLAYER_PKG_TARGET=/opt/packages/library RLAYER_PKG_LIST="$RLAYER_PACKAGES" \
  RLAYER_CRAN_REPO="$CRAN_REPO" RLAYER_JOBS="$JOBS" \
  in_opt /opt/R/bin/Rscript --vanilla "$BUILDSPEC_DIR/install-packages.R"

# Libraries the runtime layer already bundles resolve inside /opt and are not copied again.
: >"$STATE/packages-libs.txt"
os_libs "$STATE/os-libs.txt"
in_opt sh "$BUILDSPEC_DIR/closure.sh" "$STATE/packages-libs.txt" "$STATE/os-libs.txt" /opt/packages
in_opt sh "$BUILDSPEC_DIR/prune.sh" /opt/packages
set -- packages
while IFS= read -r lib; do
  [ -n "$lib" ] || continue
  strip --strip-unneeded "$OPT/lib/$lib" 2>/dev/null || true
  set -- "$@" "lib/$lib"
done <"$STATE/packages-libs.txt"

python3 "$BUILDSPEC_DIR/layerzip.py" zip "$OPT" "$OUT/packages.zip" "$@"
reused=""
[ -f "$STATE/runtime.reused" ] && reused="--reused-runtime"
# shellcheck disable=SC2086 # $reused is empty or one fixed flag
configure_flags >"$STATE/configure-flags.used"  # the ones this R version was built with
python3 "$BUILDSPEC_DIR/layerzip.py" manifest "$OUT/packages.zip" packages "$OUT/packages.manifest.json" \
  --recipe-hash "$(cat "$STATE/recipe_hash")" --packages-lib "$OPT/packages/library" \
  --shared-libs "$STATE/packages-libs.txt" --configure-flags "$STATE/configure-flags.used" \
  --build-seconds "$(($(now) - started))" $reused
log "packages layer: $(wc -c <"$OUT/packages.zip") bytes zipped"
