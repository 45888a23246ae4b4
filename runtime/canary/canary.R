# rlayer canary: the function the pipeline invokes to prove freshly published layers.
#
# Event:    {"expected_r_version": "4.2.2", "packages": ["jsonlite", "digest"]}
# Response: {"r_version": "4.2.2", "packages": {"jsonlite": "1.8.4", ...}, "failed": {},
#            "environment": {"locale": "C.UTF-8", "iconv": true},
#            "result": {...}, "timings": {"load_ms": ..., "compute_ms": ...}}
#
# It fails (an R error of class "CanaryError", so the invoke has a FunctionError) when R is
# not the expected version or any package does not load. Loading is loadNamespace(): it
# runs each package's shared object, which is what a missing system library breaks.
# Base R only (the runtime starts R with only base attached), plus what it is asked to load.

canary_fail <- function(message) {
  stop(structure(class = c("CanaryError", "error", "condition"),
                 list(message = message, call = NULL)))
}

now_ms <- function() as.numeric(Sys.time()) * 1000

# A small computation that touches R's numerics, LAPACK (solve), and the packages asked for.
compute <- function(loaded) {
  a <- matrix(c(4, 2, 0, 2, 5, 1, 0, 1, 3), nrow = 3L)
  b <- c(2, 1, 3)
  x <- solve(a, b)
  result <- list(
    solve = round(x, 10),
    residual = max(abs(a %*% x - b)),
    sum_of_squares = sum(seq_len(1000L)^2)
  )
  if ("jsonlite" %in% loaded) {
    doc <- list(id = 1:3, name = c("a", "b", "c"))
    back <- jsonlite::fromJSON(jsonlite::toJSON(doc))
    result$json_roundtrip <- identical(back$id, doc$id) && identical(back$name, doc$name)
  }
  if ("digest" %in% loaded) {
    result$sha256 <- digest::digest("rlayer", algo = "sha256", serialize = FALSE)
  }
  result
}

# The locale R started with and iconv: Lambda's image has glibc's C.UTF-8 and only its
# built-in converters (no gconv modules) locally; R must still start in UTF-8 and convert.
check_environment <- function() {
  ctype <- Sys.getlocale("LC_CTYPE")
  if (!isTRUE(l10n_info()[["UTF-8"]])) {
    canary_fail(sprintf("R started in locale '%s', not a UTF-8 one", ctype))
  }
  text <- "na\u00efve \u20ac"
  utf16 <- iconv(text, "UTF-8", "UTF-16LE", toRaw = TRUE)[[1]]
  back <- if (is.null(utf16)) NA_character_ else iconv(list(utf16), "UTF-16LE", "UTF-8")
  if (!identical(back, text)) canary_fail("iconv cannot convert UTF-8 to UTF-16LE and back")
  latin1 <- iconv("na\u00efve", "UTF-8", "latin1")
  if (is.na(latin1)) canary_fail("iconv cannot convert UTF-8 to latin1")
  list(locale = ctype, iconv = TRUE)
}

handler <- function(event) {
  r_version <- paste(R.version$major, R.version$minor, sep = ".")
  expected <- event$expected_r_version
  if (!is.null(expected) && !identical(as.character(expected), r_version)) {
    canary_fail(sprintf("R is %s, expected %s", r_version, expected))
  }

  environment <- check_environment()
  started <- now_ms()
  packages <- structure(list(), names = character())
  failed <- structure(list(), names = character())
  for (pkg in as.character(unlist(event$packages))) {
    version <- tryCatch({
      suppressPackageStartupMessages(loadNamespace(pkg))
      unname(getNamespaceVersion(pkg))
    }, error = function(e) e)
    if (inherits(version, "error")) {
      failed[[pkg]] <- conditionMessage(version)
    } else {
      packages[[pkg]] <- version
    }
  }
  load_ms <- now_ms() - started
  if (length(failed)) {
    canary_fail(paste0(
      "packages failed to load: ",
      paste(sprintf("%s (%s)", names(failed), unlist(failed)), collapse = "; ")
    ))
  }

  started <- now_ms()
  # A library the layer lacks shows up as a warning from dyn.load before the error
  # (LAPACK's lapack.so needs libgfortran): the failure names it.
  warned <- character()
  result <- withCallingHandlers(
    tryCatch(compute(names(packages)), error = function(e) {
      canary_fail(paste(c(conditionMessage(e), warned), collapse = ": "))
    }),
    warning = function(w) {
      warned <<- c(warned, gsub("\\s+", " ", conditionMessage(w)))
      invokeRestart("muffleWarning")
    }
  )
  compute_ms <- now_ms() - started

  list(
    r_version = r_version,
    packages = packages,
    failed = failed,
    environment = environment,
    result = result,
    timings = list(load_ms = round(load_ms, 3), compute_ms = round(compute_ms, 3))
  )
}
