#!/bin/sh
# prune.sh DIR...: strips ELF files and removes what a Lambda function never reads:
# documentation, help pages, HTML, tests, translations, man pages, pkg-config files; in
# R itself, recompresses its packages' code (lazyload-xz.R).
# Runs with the build's /opt at /opt (in_opt).
set -eu
for dir in "$@"; do
  [ -d "$dir" ] || continue
  find "$dir" -type f \( -name '*.so' -o -name '*.so.*' -o -perm -u+x \) | while IFS= read -r f; do
    [ "$(od -An -tx1 -N4 "$f" 2>/dev/null | tr -d ' \n')" = 7f454c46 ] || continue
    strip --strip-unneeded "$f" 2>/dev/null || echo "prune: could not strip $f (kept as is)" >&2
  done
  # Package-level docs in every library tree (R's own library and site libraries).
  find "$dir" -type d -name library | while IFS= read -r lib; do
    for pkg in "$lib"/*/; do
      [ -f "$pkg/DESCRIPTION" ] || continue
      rm -rf "$pkg/help" "$pkg/html" "$pkg/doc" "$pkg/tests" "$pkg/po" "$pkg/demo" \
        "$pkg/NEWS" "$pkg/NEWS.md" "$pkg/NEWS.Rd" "$pkg/CITATION"
      # Indexes of the help pages removed above; library() does not read them.
      rm -f "$pkg/Meta/Rd.rds" "$pkg/Meta/hsearch.rds" "$pkg/Meta/links.rds" \
        "$pkg/Meta/vignette.rds" "$pkg/Meta/demo.rds"
    done
    rm -rf "$lib/translations"
  done
  # R itself: manuals, NEWS, man pages, pkg-config, LaTeX styles, tcltk (this R has no Tcl).
  if [ "$dir" = /opt/R ]; then
    rm -rf /opt/R/share/man /opt/R/lib/R/doc /opt/R/lib/pkgconfig /opt/R/lib/R/share/texmf \
      /opt/R/lib/R/library/tcltk
    # Font metrics: keep the standard PostScript families pdf() and postscript() use by
    # default (Helvetica, Times, Courier, Symbol, ZapfDingbats); the URW, Computer Modern,
    # Arial and other optional families are 0.5 MB of the zip. Trade-off: pdf(family =
    # "Bookman") and the like fail in the layer.
    find /opt/R/lib/R/library/grDevices/afm -type f -name '*.afm.gz' | while IFS= read -r afm; do
      case "${afm##*/}" in
        Helvetica* | Times-* | Courier* | Symbol.afm.gz | ZapfDingbats.afm.gz)
          # Recompressed without gzip's name and time stamp: reproducible layers.
          gzip -dc "$afm" | gzip -9n >"$afm.tmp" && mv "$afm.tmp" "$afm"
          ;;
        *) rm -f "$afm" ;;
      esac
    done
    # The lazy-load databases of R's own packages, xz per object (lazyload-xz.R says why).
    # Not base, which every start reads: xz there took 0.14 MB off the zip but cost about
    # 5 ms of every cold start.
    pkgs=$(cd /opt/R/lib/R/library && for p in */; do [ "$p" = base/ ] || printf '%s ' "${p%/}"; done)
    # Stored without byte code (2.8 MB off the zip, the 10 MB target needs 2.3): tools (Rd,
    # check and install tooling), utils, stats and the graphics packages. With the
    # bootstrap's R_ENABLE_JIT=0 their functions run in R's AST interpreter: file_ext(),
    # head(), read.csv(), quantile(), glm() measured within 10% of their compiled times,
    # lm() 17% (they spend their time in base and C); R_ENABLE_JIT=3 compiles what a function
    # calls. R's default JIT would compile tools' installer in every package install (about
    # 1 s a package): build-packages.sh runs with R_ENABLE_JIT=0. Kept compiled: methods (S4 dispatch ran 1.5-1.8x slower without), compiler
    # (the JIT and every package install run it), parallel (the loop's workers), jsonlite.
    # Headers, Makeconf and libtool stay: a build that reuses a cached runtime layer
    # compiles its packages against this zip, unzipped (prepare.sh, build-packages.sh).
    # libgfortran cannot be linked in statically: the build root's libgfortran.a is not PIC.
    # shellcheck disable=SC2086 # a list of package names
    R_DEFAULT_PACKAGES=base R_ENABLE_JIT=0 /opt/R/bin/Rscript --vanilla \
      "$(dirname -- "$0")/lazyload-xz.R" /opt/R/lib/R/library \
      --uncompiled=tools,utils,stats,graphics,grDevices,grid,splines,stats4 $pkgs >&2
  fi
done
