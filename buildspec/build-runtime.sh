#!/bin/sh
# build: the runtime layer (bootstrap, runtime/, R/, lib/) unless prepare.sh restored it.
# The compiled R is cached by (R version, architecture, compile hash), so changing only the
# loop or the assembly below re-assembles the layer in seconds without recompiling R.
. "$(dirname -- "$0")/common.sh"

if [ -f "$STATE/runtime.reused" ]; then
  log "runtime layer reused: nothing to build"
  exit 0
fi
started=$(now)
recipe=$(cat "$STATE/recipe_hash")

# 1. R itself: compiled before with the same flags, or now.
compiled="r/$RLAYER_R_VERSION-$RLAYER_ARCH-$(compile_hash).tar.gz"
rm -rf "$OPT/R"
if cache_get "$compiled" "$WORK/compiled-r.tar.gz"; then
  log "compiled R $compiled from the cache"
  tar -xzf "$WORK/compiled-r.tar.gz" -C "$OPT"
else
  check_toolchain || exit 1
  sh "$BUILDSPEC_DIR/fetch-r.sh"
  sh "$BUILDSPEC_DIR/compile-r.sh"
  tar -czf "$WORK/compiled-r.tar.gz" -C "$OPT" R
  cache_put "$WORK/compiled-r.tar.gz" "$compiled"
  rm -rf "$WORK/src"
fi
rm -f "$WORK/compiled-r.tar.gz"
R_HOME_DIR="$OPT/R/lib/R"
[ -x "$R_HOME_DIR/bin/exec/R" ] || die "R is not installed under $OPT/R (expected R_HOME /opt/R/lib/R)"

# 2. Library search: bundled libraries in /opt/lib are found even where LD_LIBRARY_PATH
# lacks it (Lambda sets it; a plain shell does not), after R's own lib/.
sed -i "s|^\(: \${R_LD_LIBRARY_PATH=\${R_HOME}/lib\)|\1:/opt/lib|" "$R_HOME_DIR/etc/ldpaths"
grep -q ':/opt/lib' "$R_HOME_DIR/etc/ldpaths" || die "could not add /opt/lib to etc/ldpaths"
# The packages layer's library is R's site library unless the environment says otherwise.
sed -i "s|^R_LIBS_SITE=.*|R_LIBS_SITE=\${R_LIBS_SITE:-'/opt/packages/library'}|" "$R_HOME_DIR/etc/Renviron"
grep -q "^R_LIBS_SITE=.*/opt/packages/library" "$R_HOME_DIR/etc/Renviron" ||
  die "could not set R_LIBS_SITE in etc/Renviron"

# 3. The which(1) R's Sys.which() runs (configure-flags.txt), then jsonlite, which the loop
# needs, into R's own library.
install -m 0755 "$BUILDSPEC_DIR/which" "$OPT/R/bin/which"
log "installing jsonlite into R's library"
RLAYER_PKG_TARGET=/opt/R/lib/R/library RLAYER_PKG_LIST=jsonlite RLAYER_CRAN_REPO="$CRAN_REPO" \
  RLAYER_JOBS="$JOBS" in_opt /opt/R/bin/Rscript --vanilla "$BUILDSPEC_DIR/install-packages.R"

# 4. The bootstrap and the loop.
install -m 0755 "$SRC_ROOT/runtime/bootstrap/bootstrap" "$OPT/bootstrap"
mkdir -p "$OPT/runtime"
# The loop (runtime.R) and the parts it sources (logging.R, events.R, ...).
install -m 0644 "$SRC_ROOT"/runtime/bootstrap/*.R "$OPT/runtime/"
# The loop's C part (runtime/bootstrap/native/: HTTP heads, JSON), built with this R: it
# needs only what libR.so needs, and the ABI check sees it like any other ELF file.
rm -rf "$WORK/native"
cp -R "$SRC_ROOT/runtime/bootstrap/native" "$WORK/native"
(cd "$WORK/native" && in_opt /opt/R/bin/R CMD SHLIB -o native.so ./*.c) ||
  die "could not compile runtime/bootstrap/native/"
install -m 0755 "$WORK/native/native.so" "$OPT/runtime/native.so"
strip --strip-unneeded "$OPT/runtime/native.so"

# 5. Shared libraries, strip, prune.
rm -rf "$OPT/lib"
: >"$STATE/runtime-libs.txt"
os_libs "$STATE/os-libs.txt"
in_opt sh "$BUILDSPEC_DIR/closure.sh" "$STATE/runtime-libs.txt" "$STATE/os-libs.txt" /opt/R
in_opt sh "$BUILDSPEC_DIR/prune.sh" /opt/R /opt/lib

# 6. The zip and its manifest; both go to the cache for the next build with this recipe.
python3 "$BUILDSPEC_DIR/layerzip.py" zip "$OPT" "$OUT/runtime.zip" bootstrap runtime R lib
configure_flags >"$STATE/configure-flags.used"  # the ones this R version was built with
python3 "$BUILDSPEC_DIR/layerzip.py" manifest "$OUT/runtime.zip" runtime "$OUT/runtime.manifest.json" \
  --recipe-hash "$recipe" --packages-lib "$R_HOME_DIR/library" \
  --shared-libs "$STATE/runtime-libs.txt" --configure-flags "$STATE/configure-flags.used" \
  --build-seconds "$(($(now) - started))"
key="runtime/$RLAYER_R_VERSION-$RLAYER_ARCH-$recipe"
cache_put "$STATE/runtime-libs.txt" "$key/runtime-libs.txt"
cache_put "$OUT/runtime.manifest.json" "$key/runtime.manifest.json"
cache_put "$OUT/runtime.zip" "$key/runtime.zip"
log "runtime layer: $(wc -c <"$OUT/runtime.zip") bytes zipped"
