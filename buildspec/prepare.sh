#!/bin/sh
# pre_build: checks the request, computes the recipe hash and, when this runtime layer
# (R version, architecture, recipe) was built before, restores it instead of compiling.
. "$(dirname -- "$0")/common.sh"

for f in runtime/bootstrap/bootstrap runtime/bootstrap/runtime.R runtime/bootstrap/native/init.c; do
  [ -f "$SRC_ROOT/$f" ] || die "$f is missing from the source"
done
recipe=$(recipe_hash)
printf '%s\n' "$recipe" >"$STATE/recipe_hash"
log "build $RLAYER_BUILD_ID: R $RLAYER_R_VERSION $RLAYER_ARCH, packages: ${RLAYER_PACKAGES:-(none)}"
log "recipe $recipe, /opt mode $RLAYER_OPT_MODE, work dir $WORK"

key="runtime/$RLAYER_R_VERSION-$RLAYER_ARCH-$recipe"
rm -f "$STATE/runtime.reused"
if cache_get "$key/runtime.zip" "$OUT/runtime.zip" &&
  cache_get "$key/runtime.manifest.json" "$OUT/runtime.manifest.json" &&
  cache_get "$key/runtime-libs.txt" "$STATE/runtime-libs.txt"; then
  rm -rf "$OPT/bootstrap" "$OPT/runtime" "$OPT/R" "$OPT/lib"
  unzip -q "$OUT/runtime.zip" -d "$OPT"
  python3 "$BUILDSPEC_DIR/layerzip.py" mark-reused "$OUT/runtime.manifest.json"
  touch "$STATE/runtime.reused"
  log "runtime layer $key reused from the cache"
else
  rm -f "$OUT/runtime.zip" "$OUT/runtime.manifest.json"
  log "runtime layer $key not cached: R will be built"
fi
