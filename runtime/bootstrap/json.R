# rlayer: JSON for the Runtime API loop (sourced by runtime.R into its own environment).
# One pair, to_json(x) and from_json(text), used for every event, response and error body.
#
# Why not jsonlite at start-up: loading its namespace also loads methods, ~70-90 ms of every
# cold start. native/'s reader and writer (`native`, loaded by runtime.R) give the same
# result as jsonlite for what events and handlers exchange, in microseconds, and hand the
# rest to jsonlite, loaded lazily, once:
#   from_json(text) == jsonlite::fromJSON(text, simplifyVector = TRUE,
#                                         simplifyDataFrame = FALSE, simplifyMatrix = FALSE)
#   to_json(x)      == jsonlite::toJSON(x, auto_unbox = TRUE, null = "null", na = "null",
#                                       digits = NA)
# (tests/integration/test_runtime_json.py compares both on a corpus). Handed to jsonlite:
# reading, integers past 15 digits, numbers past the largest double, "$date" keys, "\u0000"
# and unpaired surrogate escapes, empty keys, the strings "NA", "NaN", "Inf", "-Inf" and
# strings beside other scalars in an array, an empty array beside non-empty ones, and any
# text that is not JSON (so jsonlite's error is the one given); writing, any class but
# factor and I() (data frames, dates, matrices, ...), attributes but names, missing or
# repeated names, complex and raw vectors.

jsonlite_fn <- local({
  loaded <- FALSE
  function(name) {
    if (!loaded) {
      if (!requireNamespace("jsonlite", quietly = TRUE)) {
        stop("this value needs the jsonlite package, which is not installed", call. = FALSE)
      }
      loaded <<- TRUE
    }
    getExportedValue("jsonlite", name)
  }
})

# `text`: a string, or the raw bytes of one (an event's body, read as UTF-8).
from_json <- function(text) {
  got <- .Call(native$rl_json_read, text)
  if (!is.null(got)) return(got[[1L]])
  if (is.raw(text)) {
    text <- rawToChar(text)
    Encoding(text) <- "UTF-8"
  }
  jsonlite_fn("fromJSON")(text, simplifyVector = TRUE, simplifyDataFrame = FALSE,
                          simplifyMatrix = FALSE)
}

to_json <- function(x) {
  if (inherits(x, "json")) return(as.character(x)) # jsonlite::toJSON output, as it is
  got <- .Call(native$rl_json_write, x)
  if (!is.null(got)) return(got)
  as.character(jsonlite_fn("toJSON")(x, auto_unbox = TRUE, null = "null", na = "null",
                                      digits = NA))
}
