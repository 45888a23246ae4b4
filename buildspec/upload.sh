#!/bin/sh
# post_build: copies the zips and manifests to the build's artifact location:
# RLAYER_ARTIFACT_URI is s3://bucket[/prefix] (CodeBuild) or a directory (file:// or a path).
# The build's own prefix, artifacts/<build id>/, is added unless the URI already ends in it.
. "$(dirname -- "$0")/common.sh"

[ -f "$OUT/runtime.zip" ] && [ -f "$OUT/runtime.manifest.json" ] || die "no runtime layer to upload"
if [ -n "$RLAYER_PACKAGES" ]; then
  [ -f "$OUT/packages.zip" ] && [ -f "$OUT/packages.manifest.json" ] || die "no packages layer to upload"
fi
base=${RLAYER_ARTIFACT_URI%/}
case "$base" in
  */artifacts/"$RLAYER_BUILD_ID") dest=$base ;;
  *) dest="$base/artifacts/$RLAYER_BUILD_ID" ;;
esac
for f in runtime.zip runtime.manifest.json packages.zip packages.manifest.json; do
  [ -f "$OUT/$f" ] || continue
  case "$dest" in
    s3://*) aws s3 cp --only-show-errors "$OUT/$f" "$dest/$f" ;;
    *)
      dir=${dest#file://}
      mkdir -p "$dir"
      cp "$OUT/$f" "$dir/$f.part" && mv "$dir/$f.part" "$dir/$f"
      ;;
  esac
  log "uploaded $dest/$f ($(wc -c <"$OUT/$f") bytes)"
done
printf '%s/\n' "$dest" >"$STATE/artifact_location"
