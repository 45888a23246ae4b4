#!/bin/sh
# Configures, compiles and installs R from $WORK/src/R into /opt/R of this build.
# With RLAYER_OPT_MODE=bwrap the install is staged (DESTDIR) into $WORK/root, whose opt/
# the later steps bind at /opt; R's compiled-in paths stay /opt/R either way.
. "$(dirname -- "$0")/common.sh"

# R records the directory it was built in inside the base packages (their lazy-load
# databases keep it as the namespace's path), so two compiles in two build directories
# differ. Build at one fixed path instead, one compile at a time for this version and
# architecture on a machine, and remove it afterwards.
BUILD_ROOT=/tmp/rlayer-r-build
BUILD_DIR="$BUILD_ROOT/$RLAYER_R_VERSION-$RLAYER_ARCH"
mkdir -p "$BUILD_ROOT"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$BUILD_DIR.lock"
  flock 9
fi
rm -rf "$BUILD_DIR"
mv "$WORK/src/R" "$BUILD_DIR"
trap 'rm -rf "$BUILD_DIR"' EXIT
cd "$BUILD_DIR"
# The flags file has one argument per line; read them into "$@" without word splitting.
set --
while IFS= read -r flag; do set -- "$@" "$flag"; done <<FLAGS
$(configure_flags)
FLAGS
# R's Sys.which() runs the which(1) configure-flags.txt names (the layer's own: Lambda has
# none), and R's own build calls it when utils loads: it must exist before make.
mkdir -p "$OPT/R/bin"
install -m 0755 "$BUILDSPEC_DIR/which" "$OPT/R/bin/which"
log "configure $*"
./configure "$@"
log "make -j$JOBS"
in_opt make -j"$JOBS"
if [ "$RLAYER_OPT_MODE" = direct ]; then
  make install
else
  make install DESTDIR="$WORK/root"
fi
[ -x "$OPT/R/bin/Rscript" ] || die "make install left no $OPT/R/bin/Rscript"
log "R installed"
