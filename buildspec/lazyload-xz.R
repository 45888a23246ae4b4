# Rscript lazyload-xz.R LIBRARY [--uncompiled=PKG,...] PACKAGE...: rewrites each package's
# lazy-load database (R/<package>.rdb and .rdx) with every object compressed by xz where
# that is smaller than R's default zlib (about a quarter off the zipped layer's largest
# part). R reads such a database (compressed = 3) object by object: each blob names its own
# method after its length ('Z' xz, '0' stored), as R's own writer (R_compress3) makes them.
# The packages named by --uncompiled are also stored without their byte code (closures
# keep formals, body, environment and attributes): byte code is about 60% of such a
# database, and R runs the plain closures in its AST interpreter, or compiles them when
# R_ENABLE_JIT asks (prune.sh says which packages and why).
# Trade-off: xz decompresses more slowly (prune.sh leaves base, read at every start, in zlib).
args <- commandArgs(trailingOnly = TRUE)
library_dir <- args[[1L]]
args <- args[-1L]
uncompiled <- character()
flag <- startsWith(args, "--uncompiled=")
for (a in args[flag]) {
  uncompiled <- c(uncompiled, strsplit(sub("^--uncompiled=", "", a), ",", fixed = TRUE)[[1L]])
}
packages <- args[!flag]
stopifnot(all(uncompiled %in% packages))

# memCompress() writes the .xz container; R's reader wants the raw LZMA2 data inside it
# (lzma_raw_decoder), exactly: the block between the block header and its padding, whose
# size the container's index gives (unpadded size - block header - check).
raw_lzma2 <- function(xz) {
  n <- length(xz)
  check_size <- c(0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64)[
    bitwAnd(as.integer(xz[[8L]]), 15L) + 1L]
  header_size <- (as.integer(xz[[13L]]) + 1L) * 4L
  backward <- sum(as.integer(xz[(n - 7L):(n - 4L)]) * 256^(0:3))
  pos <- n - 12L - (backward + 1) * 4 + 2L # past the index indicator byte
  vli <- function() {
    value <- 0
    shift <- 0
    repeat {
      byte <- as.integer(xz[[pos]])
      pos <<- pos + 1L
      value <- value + bitwAnd(byte, 127L) * 2^shift
      shift <- shift + 7
      if (byte < 128L) return(value)
    }
  }
  if (vli() != 1) stop("an xz stream of one block was expected")
  compressed <- vli() - header_size - check_size
  xz[12L + header_size + seq_len(compressed)]
}

# One blob as R_compress3 writes it: the uncompressed length (4 bytes, big-endian), then xz,
# or the bytes as they are when xz does not shrink them (R's reader of '1', zlib, in such a
# database leaves its output length unset).
blob3 <- function(data) {
  n <- length(data)
  size <- as.raw(c(n %/% 2^24, (n %/% 2^16) %% 256, (n %/% 2^8) %% 256, n %% 256))
  xz <- raw_lzma2(memCompress(data, "xz"))
  if (length(xz) < n) c(size, charToRaw("Z"), xz) else c(size, charToRaw("0"), data)
}

# The closure without its byte code: R keeps the source expression as the byte code's first
# constant, which body() returns; attributes (S4 generics and methods have them) recursively.
decompile <- function(x) {
  type <- typeof(x)
  if (!type %in% c("closure", "list", "S4")) return(x) # nothing compiled inside
  s4 <- isS4(x)
  a <- attributes(x)
  if (type == "closure" && typeof(.Internal(bodyCode(x))) == "bytecode") {
    x <- as.function(c(formals(x), list(body(x))), envir = environment(x))
  } else if (type == "list") {
    attributes(x) <- NULL # plain indexing: no method of its class runs
    for (i in seq_along(x)) if (!is.null(x[[i]])) x[i] <- list(decompile(x[[i]]))
  }
  if (!is.null(a)) {
    for (i in seq_along(a)) a[i] <- list(decompile(a[[i]]))
    attributes(x) <- a
  }
  if (s4 && !isS4(x)) x <- asS4(x)
  x
}

# A package's database, every object read with R's own reader (any compression R wrote)
# and written again without byte code. The environments it refers to stay references: the
# reader's hook hands out a stand-in per name, the writer's hook gives that name back.
uncompile_blobs <- function(index, rdb_file) {
  read_hook <- function(name) {
    e <- new.env(parent = emptyenv())
    assign(".__ref__", name, envir = e)
    e
  }
  write_hook <- function(e) {
    if (!is.environment(e)) return(NULL) # external pointers: written as R wrote them
    name <- get0(".__ref__", envir = e, inherits = FALSE)
    if (is.null(name)) stop("an environment in the database that is not a reference")
    name
  }
  one <- function(entry) {
    value <- lazyLoadDBfetch(entry, rdb_file, index$compressed, read_hook)
    blob3(serialize(decompile(value), NULL, refhook = write_hook))
  }
  list(variables = lapply(index$variables, one), references = lapply(index$references, one))
}

# The same objects, recompressed byte for byte: R's zlib blob is 4 bytes of uncompressed
# length, then the zlib stream.
recompress_blobs <- function(index, bytes) {
  one <- function(entry) {
    blob <- bytes[entry[[1L]] + seq_len(entry[[2L]])]
    blob3(memDecompress(blob[-(1:4)], "gzip"))
  }
  list(variables = lapply(index$variables, one), references = lapply(index$references, one))
}

# Writes the new database beside the old one (.tmp); the caller renames them all at the
# end, as this process may still read the old ones through the namespaces it loaded.
rewrite <- function(base, plain) {
  rdx_file <- paste0(base, ".rdx")
  rdb_file <- paste0(base, ".rdb")
  if (!file.exists(rdx_file) || !file.exists(rdb_file)) return(NULL)
  index <- readRDS(rdx_file)
  if (!isTRUE(index$compressed)) return(NULL) # zlib (TRUE) databases only
  blobs <- if (plain) uncompile_blobs(index, rdb_file) else
    recompress_blobs(index, readBin(rdb_file, "raw", file.size(rdb_file)))
  at <- 0
  place <- function(blob) {
    where <- as.integer(c(at, length(blob)))
    at <<- at + length(blob)
    where
  }
  index$variables <- lapply(blobs$variables, place)
  index$references <- lapply(blobs$references, place)
  index$compressed <- 3L
  writeBin(unlist(c(blobs$variables, blobs$references), use.names = FALSE),
           paste0(rdb_file, ".tmp"))
  saveRDS(index, paste0(rdx_file, ".tmp"))
  file.size(rdb_file) - at
}

done <- character()
for (package in packages) {
  base <- file.path(library_dir, package, "R", package)
  plain <- package %in% uncompiled
  saved <- rewrite(base, plain)
  if (is.null(saved)) next
  done <- c(done, base)
  cat(sprintf("lazyload-xz: %s %.0f kB smaller%s\n", package, saved / 1000,
              if (plain) " (without byte code)" else ""))
}
for (base in done) {
  for (ext in c(".rdb", ".rdx")) {
    if (!file.rename(paste0(base, ext, ".tmp"), paste0(base, ext))) stop("could not rename ", base)
  }
}
# Every object of every rewritten package read back, in a fresh R: a database R cannot read
# fails the build here, not a function on Lambda. The packages stored without byte code
# must hold no compiled closure.
check <- sprintf(paste(
  "compiled <- function(f) typeof(f) == 'closure' && typeof(.Internal(bodyCode(f))) == 'bytecode';",
  "plain <- c(%s);",
  "for (p in c(%s)) { ns <- if (p == 'base') baseenv() else loadNamespace(p, lib.loc = '%s');",
  "n <- sum(vapply(ls(ns, all.names = TRUE), function(x) compiled(get(x, envir = ns)), NA));",
  "if (n > 0 && p %%in%% plain) stop(p, ': ', n, ' byte-compiled closures') }"
), paste0("'", c("", uncompiled), "'", collapse = ", "),
paste0("'", packages, "'", collapse = ", "), library_dir)
status <- system2(file.path(R.home("bin"), "Rscript"), c("--vanilla", "-e", shQuote(check)))
if (status != 0L) stop("lazyload-xz: the rewritten databases do not load")
