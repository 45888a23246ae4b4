#!/bin/sh
# Configures, compiles and installs R from $WORK/src/R into /opt/R of this build.
# With RLAYER_OPT_MODE=bwrap the install is staged (DESTDIR) into $WORK/root, whose opt/
# the later steps bind at /opt; R's compiled-in paths stay /opt/R either way.
. "$(dirname -- "$0")/common.sh"

cd "$WORK/src/R"
# The flags file has one argument per line; read them into "$@" without word splitting.
set --
while IFS= read -r flag; do set -- "$@" "$flag"; done <<FLAGS
$(configure_flags)
FLAGS
log "configure $*"
./configure "$@"
log "make -j$JOBS"
make -j"$JOBS"
if [ "$RLAYER_OPT_MODE" = direct ]; then
  make install
else
  make install DESTDIR="$WORK/root"
fi
[ -x "$OPT/R/bin/Rscript" ] || die "make install left no $OPT/R/bin/Rscript"
log "R installed"
