# Sourced by every buildspec/ step. POSIX sh: runs on Amazon Linux 2023 (CodeBuild) and
# Debian/Ubuntu alike.
#
# The request reaches the steps only through these environment variables (written by
# chalicelib.builders.base.build_environment); each is validated here before any use and
# always expanded in double quotes, never pasted into a command line or into R code:
#   RLAYER_BUILD_ID RLAYER_R_VERSION RLAYER_ARCH RLAYER_PACKAGES RLAYER_SPEC_HASH
#   RLAYER_RUNTIME_LAYER_NAME RLAYER_PACKAGES_LAYER_NAME RLAYER_ARTIFACT_URI
#   R_SOURCE (optional)  RLAYER_CRAN_REPO (optional)  RLAYER_SYSTEM_PACKAGES (optional)
# Where the build happens (set by the backend, defaults below):
#   RLAYER_WORK_DIR    scratch space of this build
#   RLAYER_CACHE_DIR   local cache (compiled R, runtime layers), or
#   RLAYER_CACHE_URI   s3://bucket/prefix/ cache shared by CodeBuild builds
#   RLAYER_OPT_MODE    bwrap: /opt of this build is a directory bound at /opt (default off
#                      CodeBuild); direct: write the machine's /opt (CodeBuild's throwaway box)
#   RLAYER_JOBS        make -j
#   RLAYER_BUILD_OS    the build root's identity (the local backend: debian-bullseye-<list
#                      hash>); default from /etc/os-release, "amazonlinux-2023" on CodeBuild
set -eu

BUILDSPEC_DIR=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
SRC_ROOT=$(dirname -- "$BUILDSPEC_DIR")

log() { printf '[rlayer %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf '[rlayer] ERROR: %s\n' "$*" >&2; exit 1; }

# matches <value> <extended regex>: whole-value match, no shell interpretation.
matches() { printf '%s\n' "$1" | grep -Eqx -- "$2" && [ "$(printf '%s' "$1" | wc -l)" -eq 0 ]; }

require_var() {
  name=$1 pattern=$2
  eval "value=\${$name-}"
  [ -n "$value" ] || die "$name is not set"
  matches "$value" "$pattern" || die "$name is not valid: '$value'"
}

optional_var() {
  name=$1 pattern=$2
  eval "value=\${$name-}"
  [ -z "$value" ] || matches "$value" "$pattern" || die "$name is not valid: '$value'"
}

PKG_RE='[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9](==[0-9]+([.-][0-9]+)+)?'
validate_env() {
  require_var RLAYER_BUILD_ID '[A-Za-z0-9][A-Za-z0-9_.-]{0,127}'
  require_var RLAYER_R_VERSION '[0-9]+\.[0-9]+\.[0-9]+'
  require_var RLAYER_ARCH 'x86_64|arm64'
  require_var RLAYER_SPEC_HASH '[0-9a-f]{8,64}'
  require_var RLAYER_RUNTIME_LAYER_NAME '[A-Za-z0-9_-]{1,140}'
  require_var RLAYER_PACKAGES_LAYER_NAME '[A-Za-z0-9_-]{1,140}'
  require_var RLAYER_ARTIFACT_URI '(s3://[a-z0-9][a-z0-9.-]{1,62}(/[A-Za-z0-9_.=/-]*)?|(file://)?/[A-Za-z0-9_.=/+-]*)'
  optional_var RLAYER_PACKAGES "($PKG_RE)( $PKG_RE)*"
  optional_var R_SOURCE '((https?|file)://|/)[A-Za-z0-9_.~=:/+%{}-]+'
  optional_var RLAYER_CRAN_REPO '(https?|file)://[A-Za-z0-9_.~=:/+%-]+'
  optional_var RLAYER_SYSTEM_PACKAGES '[A-Za-z0-9][A-Za-z0-9+_.:-]*( [A-Za-z0-9][A-Za-z0-9+_.:-]*)*'
  optional_var RLAYER_OPT_MODE 'bwrap|direct'
  optional_var RLAYER_JOBS '[1-9][0-9]{0,2}'
  optional_var RLAYER_BUILD_OS '[a-z0-9][a-z0-9.-]{0,127}'
  case "$(uname -m)" in
    x86_64) host_arch=x86_64 ;;
    aarch64 | arm64) host_arch=arm64 ;;
    *) host_arch=$(uname -m) ;;
  esac
  # R is compiled natively: an arm64 layer needs an arm64 build machine.
  [ "$host_arch" = "$RLAYER_ARCH" ] || die "this machine is $host_arch, the build asks for $RLAYER_ARCH"
}

validate_env

# The OS this build runs in: part of every cache key, so an R compiled in one OS is never
# restored into a build for another, and recorded in the manifests.
os_identity() {
  id=$(. /etc/os-release 2>/dev/null && printf '%s-%s' "${ID:-unknown}" "${VERSION_ID:-0}")
  case "$id" in amzn-*) id="amazonlinux-${id#amzn-}" ;; esac
  printf '%s\n' "$id" | tr -c 'a-z0-9.\n-' '-'
}
RLAYER_BUILD_OS=${RLAYER_BUILD_OS:-$(os_identity)}
export RLAYER_BUILD_OS
# The Lambda OS the layers target, and its row of the table (lambda_os.json).
RLAYER_TARGET=provided.al2023
LAMBDA_OS_TABLE="$SRC_ROOT/chalicelib/lambda_os.json"

CRAN_REPO=${RLAYER_CRAN_REPO:-https://cloud.r-project.org}
WORK=${RLAYER_WORK_DIR:-${TMPDIR:-/tmp}/rlayer-build-$RLAYER_BUILD_ID}
CACHE_DIR=${RLAYER_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/rlayer}
OUT="$WORK/out"
STATE="$WORK/state"
JOBS=${RLAYER_JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}
if [ -z "${RLAYER_OPT_MODE-}" ]; then
  if [ -n "${CODEBUILD_BUILD_ID-}" ]; then RLAYER_OPT_MODE=direct; else RLAYER_OPT_MODE=bwrap; fi
fi
# OPT is where this build's /opt lives on disk.
if [ "$RLAYER_OPT_MODE" = direct ]; then OPT=/opt; else OPT="$WORK/root/opt"; fi
mkdir -p "$OUT" "$STATE" "$OPT"
export LC_ALL=C

# in_opt CMD...: run CMD with this build's /opt at /opt (R's paths are absolute).
in_opt() {
  if [ "$RLAYER_OPT_MODE" = direct ]; then
    "$@"
  else
    bwrap --dev-bind / / --bind "$OPT" /opt -- "$@"
  fi
}

# Cache keys. The compiled R depends only on the configure flags and the compile step;
# the runtime layer also on everything that assembles it (scripts, the loop, the lib policy).
compile_hash() {
  { printf '%s\n' "$RLAYER_BUILD_OS"; cat "$BUILDSPEC_DIR/configure-flags.txt" "$BUILDSPEC_DIR/compile-r.sh"; } |
    sha256sum | cut -c1-16
}
recipe_hash() {
  {
    compile_hash
    cat "$BUILDSPEC_DIR/build-runtime.sh" "$BUILDSPEC_DIR/closure.sh" "$BUILDSPEC_DIR/prune.sh" \
      "$BUILDSPEC_DIR/lazyload-xz.R" \
      "$BUILDSPEC_DIR/install-packages.R" "$LAMBDA_OS_TABLE" \
      "$BUILDSPEC_DIR/layerzip.py" "$BUILDSPEC_DIR/which" "$SRC_ROOT/runtime/bootstrap/bootstrap" \
      "$SRC_ROOT"/runtime/bootstrap/native/* "$SRC_ROOT"/runtime/bootstrap/*.R
  } | sha256sum | cut -c1-16
}

# os_libs FILE: the sonames the target Lambda OS provides (closure.sh leaves them out).
os_libs() { python3 "$BUILDSPEC_DIR/layerzip.py" os-libs "$LAMBDA_OS_TABLE" "$RLAYER_TARGET" >"$1"; }

# configure flags, one per line in configure-flags.txt (comments and blank lines skipped).
# configure_flags: the lines of configure-flags.txt that apply to RLAYER_R_VERSION. A line
# "[<4.5] --flag" applies below R 4.5 only, "[>=4.5] --flag" from R 4.5 on; others always.
configure_flags() {
  grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$BUILDSPEC_DIR/configure-flags.txt" |
    while IFS= read -r line; do
      case "$line" in
        '['*'] '*)
          guard=${line%%]*}
          version_applies "${guard#[}" || continue
          printf '%s\n' "${line#*] }"
          ;;
        *) printf '%s\n' "$line" ;;
      esac
    done
}

# version_number X.Y[.Z]: one comparable integer.
version_number() {
  printf '%s\n' "$1" | { IFS=. read -r major minor patch; echo $((major * 10000 + ${minor:-0} * 100 + ${patch:-0})); }
}

# version_applies "<4.5" | ">=4.5": does RLAYER_R_VERSION satisfy it?
version_applies() {
  case "$1" in
    '>='*) [ "$(version_number "$RLAYER_R_VERSION")" -ge "$(version_number "${1#>=}")" ] ;;
    '<'*) [ "$(version_number "$RLAYER_R_VERSION")" -lt "$(version_number "${1#<}")" ] ;;
    *) die "configure-flags.txt: unknown version guard [$1]" ;;
  esac
}

# check_toolchain: stop before configure when this build's compilers or C library are older
# than toolchain.txt says RLAYER_R_VERSION needs (the local tools refuse such a version at
# the request already; this is the same rule where the build runs, CodeBuild included).
check_toolchain() {
  grep '^need ' "$BUILDSPEC_DIR/toolchain.txt" | while read -r _ first rest; do
    case "$first" in
      '['*']') version_applies "$(printf '%s' "$first" | tr -d '[]')" || continue
        set -- $rest ;;
      *) set -- "$first" $rest ;;
    esac
    tool=$1 wanted=$2
    shift 2
    case "$tool" in
      gcc) have=$(gcc -dumpfullversion 2>/dev/null || gcc -dumpversion) ;;
      glibc) have=$(getconf GNU_LIBC_VERSION | cut -d' ' -f2) ;;
      *) die "toolchain.txt: unknown tool $tool" ;;
    esac
    [ "$(version_number "$have")" -ge "$(version_number "$wanted")" ] ||
      die "R $RLAYER_R_VERSION needs $tool >= $wanted ($*); this build has $tool $have"
  done
}

# The cache: a local directory, or S3 when RLAYER_CACHE_URI is s3:// (CodeBuild). CodeBuild
# builds default to <artifact bucket>/cache/ so every build of the project shares it.
cache_uri() {
  if [ -n "${RLAYER_CACHE_URI-}" ]; then
    printf '%s\n' "${RLAYER_CACHE_URI%/}"
  else
    case "$RLAYER_ARTIFACT_URI" in
      s3://*) bucket=${RLAYER_ARTIFACT_URI#s3://}; printf 's3://%s/cache\n' "${bucket%%/*}" ;;
      *) printf '%s/build\n' "$CACHE_DIR" ;;
    esac
  fi
}
# cache_get KEY DEST: copy a cached file to DEST; fails (status 1) when absent.
cache_get() {
  base=$(cache_uri)
  case "$base" in
    s3://*) aws s3 cp --only-show-errors "$base/$1" "$2" 2>/dev/null ;;
    *) [ -f "$base/$1" ] && cp "$base/$1" "$2.part" && mv "$2.part" "$2" ;;
  esac
}
# cache_put FILE KEY: store FILE. Written to a temporary name and renamed, so a concurrent
# reader never sees half a file.
cache_put() {
  base=$(cache_uri)
  case "$base" in
    s3://*) aws s3 cp --only-show-errors "$1" "$base/$2" ;;
    *)
      mkdir -p "$(dirname "$base/$2")"
      cp "$1" "$base/$2.$$.part" && mv "$base/$2.$$.part" "$base/$2"
      ;;
  esac
}

# seconds since the epoch (for the manifests' build_seconds).
now() { date +%s; }
