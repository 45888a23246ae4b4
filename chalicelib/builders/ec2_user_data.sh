#!/bin/sh
# rlayer: the user data of one EC2 build instance (chalicelib/builders/ec2.py fills in the
# exports). It fetches build-source.zip, runs the buildspec phases with the same scripts as
# CodeBuild (buildspec/ec2-build.sh), uploads the artifacts, the build log and a status
# object through the build's presigned form, and powers off: the instance's shutdown
# behaviour is terminate. A watchdog ends the build after RLAYER_EC2_TIMEOUT_S and powers
# the instance off even if a step, or this script, hangs.
#@EXPORTS@
set -u
top=/srv/rlayer
log=$top/build.log
mkdir -p "$top/src" "$top/upload"
: >"$log"
state=FAILED interrupted="" build_pid="" finished=""
tail -n +1 -f "$log" &  # the build's output on the console too (GetConsoleOutput)
mirror=$!

say() { printf '[rlayer-ec2 %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >>"$log"; }

# upload FILE NAME: one form upload to <prefix>NAME with the build's presigned fields.
upload() {
  file=$1 key=$RLAYER_EC2_PREFIX$2
  set --
  while IFS= read -r field; do
    [ -n "$field" ] && set -- "$@" --form-string "$field"
  done <<FIELDS
$RLAYER_EC2_FORM
FIELDS
  curl -sS --fail --retry 3 --max-time 900 "$@" --form-string "key=$key" \
    -F "file=@$file" "$RLAYER_EC2_UPLOAD_URL" >/dev/null
}

finish() {
  [ -z "$finished" ] || return 0
  finished=1
  trap '' TERM INT
  [ -z "$build_pid" ] || kill -TERM -- "-$build_pid" 2>/dev/null
  phase=$(cat "$top/phase" 2>/dev/null || echo boot)
  reason=$(cat "$top/reason" 2>/dev/null || true)
  if [ "$state" = SUCCEEDED ]; then
    for f in "$top/upload/artifacts/$RLAYER_BUILD_ID"/*; do
      [ -f "$f" ] || continue
      upload "$f" "${f##*/}" 2>>"$log" && say "uploaded ${f##*/}" && continue
      state=FAILED reason="upload: ${f##*/} could not be uploaded"
      break
    done
  fi
  [ "$state" = SUCCEEDED ] || [ -n "$reason" ] || reason="the build ended in phase $phase"
  say "build $state${reason:+: $reason}"
  STATE=$state PHASE=$phase REASON=$reason python3 -c '
import json, os, sys
tail = open(sys.argv[1], errors="replace").read().splitlines()[-40:]
print(json.dumps({"state": os.environ["STATE"], "phase": os.environ["PHASE"],
                  "reason": os.environ["REASON"] or None, "log_tail": tail}))
' "$log" >"$top/status.json"
  upload "$log" build.log || say "the build log could not be uploaded"
  upload "$top/status.json" status.json || say "the status could not be uploaded"
  kill "$mirror" 2>/dev/null
  poweroff
}
trap finish EXIT
trap 'interrupted=1' TERM INT

main=$$
(
  sleep "$RLAYER_EC2_TIMEOUT_S"
  : >"$top/timed-out"
  kill -TERM "$main"
  sleep 600  # the uploads' time; then off, whatever the script is doing
  poweroff
) </dev/null >/dev/null 2>&1 &

say "build $RLAYER_BUILD_ID on $(uname -m): fetching the build source"
echo source >"$top/phase"
if ! curl -sS --fail --retry 5 --max-time 600 -o "$top/source.zip" "$RLAYER_EC2_SOURCE_URL" \
  2>>"$log"; then
  echo "source: build-source.zip could not be fetched" >"$top/reason"
  exit 1
fi
# Extracted with the files' modes (unzip may be missing; python3 is on every build OS).
if ! python3 -c '
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        path = z.extract(info, sys.argv[2])
        mode = info.external_attr >> 16 & 0o777
        if mode:
            os.chmod(path, mode)
' "$top/source.zip" "$top/src" 2>>"$log"; then
  echo "source: build-source.zip could not be unpacked" >"$top/reason"
  exit 1
fi

# RLAYER_ARTIFACT_URI is $top/upload: upload.sh leaves the artifacts there for finish.
export RLAYER_WORK_DIR="$top/work" RLAYER_OPT_MODE=direct
export RLAYER_PHASE_FILE="$top/phase" RLAYER_REASON_FILE="$top/reason"
setsid sh "$top/src/buildspec/ec2-build.sh" >>"$log" 2>&1 </dev/null &
build_pid=$!
wait "$build_pid"
code=$?
if [ -e "$top/timed-out" ] || [ -n "$interrupted" ]; then
  kill -TERM -- "-$build_pid" 2>/dev/null
  sleep 2
fi
if [ -e "$top/timed-out" ]; then
  state=TIMED_OUT
  echo "timed out after $RLAYER_EC2_TIMEOUT_S s in $(cat "$top/phase")" >"$top/reason"
elif [ -n "$interrupted" ]; then
  echo "stopped during $(cat "$top/phase")" >"$top/reason"
elif [ "$code" -eq 0 ]; then
  state=SUCCEEDED
  build_pid=""
fi
exit 0
