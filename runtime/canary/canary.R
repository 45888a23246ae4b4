# rlayer canary: the function the pipeline invokes to prove freshly published layers.
#
# Event:    {"expected_r_version": "4.2.2", "packages": ["jsonlite", "digest"]}
# Response: {"r_version": "4.2.2", "packages": {"jsonlite": "1.8.4", ...}, "failed": {},
#            "environment": {"locale": "C.UTF-8", "iconv": true},
#            "result": {..., "checks": {"digest": "..."}},
#            "timings": {"load_ms": ..., "compute_ms": ...}}
#
# It fails (an R error of class "CanaryError", so the invoke has a FunctionError) when R is
# not the expected version, any package asked for or installed in the packages layer (the
# whole closure) does not load, or the check of an asked-for package fails. Loading is
# loadNamespace(): it runs each package's shared object, which is what a missing system
# library breaks; the checks (CHECKS below) then run each package's compiled code. A
# package without a check is proven by loading only.
# Base R only (the runtime starts R with only base attached), plus what it is asked to load.

canary_fail <- function(message) {
  stop(structure(class = c("CanaryError", "error", "condition"),
                 list(message = message, call = NULL)))
}

now_ms <- function() as.numeric(Sys.time()) * 1000

# One small call per package that runs its compiled code (or, for pure-R packages, its main
# entry point); each returns TRUE when the answer is right.
CHECKS <- list(
  base64enc = function() base64enc::base64encode(charToRaw("rlayer")) == "cmxheWVy",
  cli = function() cli::ansi_nchar("abc") == 3L,
  curl = function() nzchar(curl::curl_version()$version) && curl::curl_escape("a b") == "a%20b",
  data.table = function() {
    dt <- data.table::fread(text = "a,b\n1,2\n3,4")
    nrow(dt) == 2L && sum(dt$b) == 6L && data.table::getDTthreads() >= 1L
  },
  DBI = function() inherits(DBI::SQL("SELECT 1"), "SQL"),
  digest = function() {
    digest::digest("rlayer", algo = "sha256", serialize = FALSE) ==
      "3ebb9b5f8d78b5a66d8494579e20c38b6ebfc0ec21b5553e9803ee0d3d840bea"
  },
  dplyr = function() {
    d <- data.frame(g = c(1, 1, 2), x = c(1, 2, 3))
    s <- dplyr::summarise(dplyr::group_by(d, g), total = sum(x), n = dplyr::n())
    nrow(s) == 2L && identical(s$total, c(3, 3))
  },
  httr2 = function() httr2::url_parse("https://example.com/a?b=1")$hostname == "example.com",
  jsonlite = function() {
    doc <- list(id = 1:3, name = c("a", "b", "c"))
    back <- jsonlite::fromJSON(jsonlite::toJSON(doc))
    identical(back$id, doc$id) && identical(back$name, doc$name)
  },
  logging = function() inherits(logging::getLogger("rlayer"), "Logger"),
  Matrix = function() Matrix::nnzero(Matrix::sparseMatrix(i = 1:3, j = 1:3, x = 1)) == 3L,
  openssl = function() nchar(as.character(openssl::sha256("rlayer"))) == 64L,
  R6 = function() R6::R6Class("C", public = list(v = 1))$new()$v == 1,
  ranger = function() {
    d <- data.frame(y = factor(rep(c("a", "b"), 20)), x = rep(c(0, 1), 20) + seq(0, 0.1, length.out = 40))
    fit <- ranger::ranger(y ~ x, data = d, num.trees = 20, seed = 1, num.threads = 1)
    fit$num.trees == 20L && fit$prediction.error < 0.2
  },
  rlang = function() rlang::is_string("a"),
  RPostgreSQL = function() inherits(DBI::dbDriver("PostgreSQL"), "PostgreSQLDriver"),
  RSQLite = function() {
    con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
    on.exit(DBI::dbDisconnect(con))
    DBI::dbWriteTable(con, "t", data.frame(x = 1:3))
    DBI::dbGetQuery(con, "SELECT SUM(x) AS s FROM t")$s == 6L
  },
  stringi = function() {
    identical(stringi::stri_sort(c("b", "C", "a"), locale = "en_US"), c("a", "b", "C")) &&
      stringi::stri_trans_toupper("stra\u00dfe", locale = "de") == "STRASSE"
  },
  tibble = function() nrow(tibble::tibble(x = 1:2)) == 2L,
  vctrs = function() vctrs::vec_size(1:3) == 3L,
  xml2 = function() {
    doc <- xml2::read_xml("<a><b>hi</b></a>")
    xml2::xml_text(xml2::xml_find_first(doc, "//b")) == "hi"
  },
  yaml = function() identical(yaml::yaml.load("a: [1, 2]")$a, c(1L, 2L))
)

# The packages installed in the packages layer (the first of R_LIBS): the whole closure.
layer_packages <- function() {
  lib <- strsplit(Sys.getenv("R_LIBS"), ":", fixed = TRUE)[[1]][1]
  if (is.na(lib) || !dir.exists(lib)) return(character())
  basename(dirname(Sys.glob(file.path(lib, "*", "DESCRIPTION"))))
}

# The check of each asked-for package that has one: name -> TRUE, or a CanaryError.
run_checks <- function(requested) {
  out <- list()
  for (pkg in intersect(requested, names(CHECKS))) {
    ok <- tryCatch(isTRUE(CHECKS[[pkg]]()), error = function(e) conditionMessage(e))
    if (!isTRUE(ok)) {
      canary_fail(sprintf("the %s check failed: %s", pkg,
        if (is.character(ok)) ok else "wrong answer"))
    }
    out[[pkg]] <- TRUE
  }
  out
}

# A small computation that touches R's numerics, LAPACK (solve), and the packages asked for.
compute <- function(loaded, requested = character()) {
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
  result$checks <- run_checks(requested)
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
  requested <- as.character(unlist(event$packages))
  for (pkg in unique(c(requested, layer_packages()))) {
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
    tryCatch(compute(names(packages), requested), error = function(e) {
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
