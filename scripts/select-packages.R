# Makes one R version's CRAN-like repository from the packages of several Debian suites.
#   Rscript select-packages.R R_VERSION OUT_DIR SUITE_DIR...
# Each SUITE_DIR holds <name>_<version>.tar.gz with <name>_<version>.DESCRIPTION beside it.
# Per package: the newest version whose "Depends: R (>= x)" R_VERSION satisfies becomes the
# repository's current one (src/contrib), the other satisfiable versions go to
# src/contrib/Archive/<name>/ as CRAN keeps superseded versions, so a pin to one of them is
# honoured. PACKAGES carries SystemRequirements too: the API reads it at request time.

args <- commandArgs(TRUE)
r_version <- package_version(args[1])
contrib <- file.path(args[2], "src", "contrib")
suites <- args[-(1:2)]
dir.create(contrib, recursive = TRUE, showWarnings = FALSE)

# TRUE when every "R (op x)" constraint of a Depends field holds for r_version.
r_satisfied <- function(depends) {
  if (is.na(depends)) return(TRUE)
  found <- regmatches(depends, gregexpr("\\bR\\s*\\(([<>=]+)\\s*([0-9.-]+)\\)", depends))[[1]]
  for (constraint in found) {
    op <- sub(".*\\(([<>=]+).*", "\\1", constraint)
    need <- package_version(sub(".*\\(\\s*[<>=]+\\s*([0-9.-]+)\\).*", "\\1", constraint))
    if (!do.call(op, list(r_version, need))) return(FALSE)
  }
  TRUE
}

candidates <- do.call(rbind, lapply(suites, function(dir) {
  files <- list.files(dir, pattern = "\\.DESCRIPTION$", full.names = TRUE)
  do.call(rbind, lapply(files, function(f) {
    d <- read.dcf(f, fields = c("Package", "Version", "Depends"))
    data.frame(
      name = d[1, "Package"], version = d[1, "Version"], depends = d[1, "Depends"],
      tarball = sub("\\.DESCRIPTION$", ".tar.gz", f), stringsAsFactors = FALSE
    )
  }))
}))
candidates <- candidates[!duplicated(candidates[c("name", "version")]), ]
refused <- character()
for (name in sort(unique(candidates$name))) {
  rows <- candidates[candidates$name == name, ]
  ok <- vapply(rows$depends, r_satisfied, TRUE)
  if (!any(ok)) {
    refused <- c(refused, sprintf("%s (%s)", name, paste(rows$version, collapse = ", ")))
    next
  }
  rows <- rows[ok, ]
  rows <- rows[order(package_version(rows$version), decreasing = TRUE), ]
  file.copy(rows$tarball[1], contrib)
  for (i in seq_len(nrow(rows))[-1]) {
    archive <- file.path(contrib, "Archive", name)
    dir.create(archive, recursive = TRUE, showWarnings = FALSE)
    file.copy(rows$tarball[i], archive)
  }
}
tools::write_PACKAGES(contrib, type = "source", fields = "SystemRequirements")
current <- read.dcf(file.path(contrib, "PACKAGES"), fields = c("Package", "Version"))
message(sprintf("  R %s: %d packages", args[1], nrow(current)))
if (length(refused)) {
  message("  left out (every version needs another R): ", paste(refused, collapse = "; "))
}
