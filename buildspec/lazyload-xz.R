# Rscript lazyload-xz.R LIBRARY PACKAGE...: rewrites each package's lazy-load database
# (R/<package>.rdb and .rdx) with every object compressed by xz where that is smaller than
# R's default zlib (about a quarter off the zipped layer's largest part). R reads such a
# database (compressed = 3) object by object: each blob names its own method after its
# length ('Z' xz, '0' stored), as R's own writer (R_compress3) makes them.
# Trade-off: xz decompresses more slowly; base, which every start reads, is left as it is.
args <- commandArgs(trailingOnly = TRUE)
library_dir <- args[[1L]]

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

recompress <- function(base) {
  rdx_file <- paste0(base, ".rdx")
  rdb_file <- paste0(base, ".rdb")
  if (!file.exists(rdx_file) || !file.exists(rdb_file)) return(invisible(0))
  index <- readRDS(rdx_file)
  if (!isTRUE(index$compressed)) return(invisible(0)) # zlib (TRUE) databases only
  bytes <- readBin(rdb_file, "raw", file.size(rdb_file))
  blobs <- list()
  at <- 0
  one <- function(entry) {
    blob <- bytes[entry[[1L]] + seq_len(entry[[2L]])]
    # R's zlib blob: 4 bytes of uncompressed length, then the zlib stream.
    data <- memDecompress(blob[-(1:4)], "gzip")
    xz <- raw_lzma2(memCompress(data, "xz"))
    # As R writes them: xz, or the bytes as they are when xz does not shrink them (R's
    # reader of '1', zlib, in such a database leaves its output length unset).
    new <- if (length(xz) < length(data)) {
      c(blob[1:4], charToRaw("Z"), xz)
    } else {
      c(blob[1:4], charToRaw("0"), data)
    }
    blobs[[length(blobs) + 1L]] <<- new
    where <- c(at, length(new))
    at <<- at + length(new)
    as.integer(where)
  }
  index$variables <- lapply(index$variables, one)
  index$references <- lapply(index$references, one)
  index$compressed <- 3L
  writeBin(unlist(blobs, use.names = FALSE), paste0(rdb_file, ".tmp"))
  saveRDS(index, paste0(rdx_file, ".tmp"))
  file.rename(paste0(rdb_file, ".tmp"), rdb_file)
  file.rename(paste0(rdx_file, ".tmp"), rdx_file)
  invisible(length(bytes) - at)
}

for (package in args[-1L]) {
  saved <- recompress(file.path(library_dir, package, "R", package))
  cat(sprintf("lazyload-xz: %s %.0f kB smaller\n", package, saved / 1000))
}
# Every object of every rewritten package read back, in a fresh R: a database R cannot read
# fails the build here, not a function on Lambda.
check <- sprintf(paste(
  "for (p in c(%s)) { ns <- loadNamespace(p, lib.loc = '%s');",
  "for (n in ls(ns, all.names = TRUE)) invisible(get(n, envir = ns)) }"
), paste0("'", args[-1L], "'", collapse = ", "), library_dir)
status <- system2(file.path(R.home("bin"), "Rscript"), c("--vanilla", "-e", shQuote(check)))
if (status != 0L) stop("lazyload-xz: the rewritten databases do not load")
