# rlayer: JSON for the Runtime API loop, in base R (sourced by runtime.R into its own
# environment). One pair, to_json(x) and from_json(text), used for every event, response and
# error body.
#
# Why not jsonlite at start-up: loading its namespace also loads methods, ~70-90 ms of every
# cold start. These functions give the same result as jsonlite for what events and handlers
# exchange, and load jsonlite (lazily, once) for the rest:
#   from_json(text) == jsonlite::fromJSON(text, simplifyVector = TRUE,
#                                         simplifyDataFrame = FALSE, simplifyMatrix = FALSE)
#   to_json(x)      == jsonlite::toJSON(x, auto_unbox = TRUE, null = "null", na = "null",
#                                       digits = NA)
# (tests/integration/test_runtime_json.py compares both on a corpus).
#
# Reading: the JSON text is checked token by token (regular expressions over the whole text,
# run in C), rewritten into the R expression that builds the value (arrays of scalars as
# .v() calls, other arrays and objects as calls to this file's own `[` and `{`, strings as
# R string literals, which share JSON's escapes, numbers with a fraction or exponent as
# exact hexadecimal doubles), parsed by R's parser and evaluated. Anything the check does
# not vouch for (invalid JSON, escapes R reads differently, jsonlite's "$date" objects)
# goes to jsonlite, so its answer, or its error, is the one given; so does a text past
# json_read_limit (64 KiB).
# Writing: NULL, logical, integer, double, character and factor vectors, lists and I() are
# written here; any other class (data frames, dates, matrices, "json" inside a list, ...)
# is written by jsonlite.

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

# ---- reading -----------------------------------------------------------------------------
json_reader <- local({
  na_strings <- c("NA", "NaN", "Inf", "-Inf")
  na_values <- list(NA, NaN, Inf, -Inf)
  # The builders the rewritten text calls; base R around them, nothing of the handler's.
  builders <- new.env(parent = baseenv())
  # An array of scalars (jsonlite: list_to_vec): null is NA, and the strings "NA", "NaN",
  # "Inf", "-Inf" are those values when no other string is in the array.
  builders$.v <- function(...) {
    x <- list(...)
    if (!is.null(names(x))) stop("a name inside an array")
    if (!length(x)) return(x)
    nulls <- lengths(x) == 0L
    if (any(nulls)) x[nulls] <- list(NA)
    out <- unlist(x, use.names = FALSE)
    if (is.character(out) && any(out %in% na_strings)) {
      strings <- vapply(x, is.character, NA)
      if (all(out[strings] %in% na_strings)) {
        x[strings] <- na_values[match(out[strings], na_strings)]
        out <- unlist(x, use.names = FALSE)
      }
    }
    out
  }
  # An array holding arrays or objects: a list; empty arrays beside atomic vectors take
  # their type (jsonlite's homoList).
  builders$`[` <- function(...) {
    out <- list(...)
    if (!is.null(names(out))) stop("a name inside an array")
    empty <- vapply(out, identical, NA, list())
    if (any(empty) && !all(empty)) {
      rest <- out[!empty]
      if (all(vapply(rest, function(z) is.vector(z) && is.atomic(z), NA))) {
        out[empty] <- list(vector(typeof(rest[[1L]])))
      }
    }
    out
  }
  builders$`{` <- function(...) {
    out <- list(...)
    if (!length(out)) return(structure(list(), names = character()))
    keys <- names(out)
    if (is.null(keys) || !all(nzchar(keys))) stop("a value without a key in an object")
    out
  }
  # JSON's literals, as names the rewritten text refers to.
  builders$true <- TRUE
  builders$false <- FALSE
  builders$null <- NULL

  # A JSON string: no raw control characters, only JSON's escapes.
  string_re <- paste0(
    "\"[^\"\\\\\001-\037]*+",
    "(?:\\\\(?:[\"\\\\/bfnrt]|u[0-9A-Fa-f]{4})[^\"\\\\\001-\037]*+)*+\""
  )
  # The text with every string as @: a sequence of JSON's tokens and whitespace, where a
  # colon only follows a key.
  tokens_re <- paste0(
    "^(?:[][{},\t\n\r ]|@(?:[\t\n\r ]*:)?",
    "|-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![\\w.+-])",
    "|(?:true|false|null)(?![\\w.+-]))*+$"
  )
  # An unpaired surrogate escape (R and jsonlite read those differently).
  lone_surrogate_re <- paste0(
    "\\\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\\\u[dD][c-fC-F])",
    "|(?<!\\\\u[dD][89abAB][0-9a-fA-F]{2})\\\\u[dD][c-fC-F][0-9a-fA-F]{2}"
  )
  top_calls <- c(".v", "[", "{", "-")

  # Numbers with a fraction or an exponent. R's parser does not round every decimal to the
  # nearest double as strtod (jsonlite) does, so these are converted here, exactly, and
  # written into the R text as hexadecimal doubles, which R reads bit for bit: a mantissa of
  # at most 15 digits and a power of ten up to 22 are both exact doubles, and one division
  # or product of exact doubles is rounded once, to the nearest (Clinger's fast path).
  # Other numbers (more digits, larger exponents) leave the text to jsonlite.
  float_re <- paste0(
    "(?<![\\w.+-])-?(?:0|[1-9][0-9]*)",
    "(?:\\.[0-9]+(?:[eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+)(?![\\w.+-])"
  )
  powers_of_ten <- cumprod(c(1, rep(10, 22))) # 1e0 .. 1e22, each exact
  exact_doubles <- function(tokens) {
    negative <- startsWith(tokens, "-")
    mark <- regexpr("[eE]", tokens)
    has_exp <- mark > 0L
    exponent <- integer(length(tokens))
    exponent[has_exp] <- as.integer(substring(tokens[has_exp], mark[has_exp] + 1L))
    mantissa <- ifelse(has_exp, substr(tokens, 1L, mark - 1L), tokens)
    mantissa <- sub("^-", "", mantissa)
    dot <- regexpr(".", mantissa, fixed = TRUE)
    exponent <- exponent - ifelse(dot > 0L, nchar(mantissa) - dot, 0L)
    digits <- sub("^0+", "", sub(".", "", mantissa, fixed = TRUE))
    trimmed <- sub("0+$", "", digits)
    exponent <- exponent + nchar(digits) - nchar(trimmed)
    if (any(nchar(trimmed) > 15L | (nzchar(trimmed) & abs(exponent) > 22L))) return(NULL)
    value <- as.numeric(ifelse(nzchar(trimmed), trimmed, "0"))
    scale <- powers_of_ten[abs(exponent) + 1L]
    value <- ifelse(exponent >= 0L, value * scale, value / scale)
    ifelse(negative, -value, value)
  }

  # `text` with its spans (starts `at`, ends before `ends`) replaced by `mark`, and back:
  # strings and floats are set aside while the rest is rewritten.
  set_aside <- function(text, at, ends, mark) {
    paste0(substring(text, c(1L, ends), c(at - 1L, nchar(text, "bytes"))),
           c(rep.int(mark, length(at)), ""), collapse = "")
  }
  put_back <- function(code, mark, values) {
    parts <- strsplit(paste0(code, " "), mark, fixed = TRUE)[[1L]]
    paste0(parts, c(values, ""), collapse = "")
  }

  # The value in a list, or NULL when the text is not for this reader (the caller then asks
  # jsonlite). Any error or warning on the way (invalid UTF-8, a ten-digit number past R's
  # integers, R's parser refusing what the checks let through) means the same.
  # Warnings become errors on the spot (withCallingHandlers is ~3 us cheaper per event than
  # a second tryCatch handler), and every error means "not for this reader".
  no_warning <- function(w) stop(conditionMessage(w), call. = FALSE)
  read <- function(text) tryCatch(withCallingHandlers({
    if (!validUTF8(text)) return(NULL)
    # Bytes: positions in characters would make every substring walk the text from its
    # start (quadratic in a text with any non-ASCII character).
    Encoding(text) <- "bytes"
    at <- gregexpr(string_re, text, perl = TRUE, useBytes = TRUE)[[1L]]
    if (at[[1L]] > 0L) {
      ends <- at + attr(at, "match.length")
      strings <- substring(text, at, ends - 1L)
      if ("\"$date\"" %in% strings) return(NULL)
      masked <- set_aside(text, at, ends, "@")
      if (grepl("\\", text, fixed = TRUE)) {
        if (grepl(lone_surrogate_re, text, perl = TRUE)) return(NULL)
        # "\/" is JSON's, not R's.
        strings <- gsub("(\\\\\\\\)|\\\\(/)", "\\1\\2", strings, perl = TRUE)
      }
    } else {
      strings <- character()
      masked <- text
    }
    if (!grepl(tokens_re, masked, perl = TRUE)) return(NULL)
    # A digit before ".", "e" or "E" (strings are masked): the only way a float starts;
    # without one the costlier search for floats is skipped.
    floats <- -1L
    if (grepl("[0-9][.eE]", masked)) floats <- gregexpr(float_re, masked, perl = TRUE)[[1L]]
    if (floats[[1L]] > 0L) {
      ends <- floats + attr(floats, "match.length")
      values <- exact_doubles(substring(masked, floats, ends - 1L))
      if (is.null(values)) return(NULL)
      masked <- set_aside(masked, floats, ends, "~")
    }
    # Arrays of scalars call .v, other arrays `[`, objects `{` (the builders' own), keys are
    # argument names, integers R's integers (ten digits: L too; past R's range R warns).
    code <- if (grepl("[", masked, fixed = TRUE)) {
      gsub("\\[(?=[^][{}]*+\\])", ".v(", masked, perl = TRUE)
    } else {
      masked
    }
    code <- gsub("([[{])", "`\\1`(", code, perl = TRUE)
    code <- chartr("]}:", "))=", code)
    code <- gsub("(?<![\\w.+-])(-?[0-9]{1,10})(?![\\w.+-])", "\\1L", code, perl = TRUE)
    if (floats[[1L]] > 0L) code <- put_back(code, "~", sprintf("%a", values))
    if (length(strings)) code <- put_back(code, "@", strings)
    Encoding(code) <- "UTF-8"
    exprs <- parse(text = code, keep.source = FALSE, encoding = "UTF-8")
    if (length(exprs) != 1L) return(NULL)
    expr <- exprs[[1L]]
    if (is.call(expr) && !(as.character(expr[[1L]]) %in% top_calls)) return(NULL)
    list(eval(expr, builders))
  }, warning = no_warning), error = function(e) NULL)
  read
})

# Past this size jsonlite reads faster (in C: a 5 MB array of numbers takes it a sixth of the
# time) by more than its loading costs; events up to it are read here.
json_read_limit <- 65536L

from_json <- function(text) {
  got <- if (nchar(text, "bytes") <= json_read_limit) json_reader(text)
  if (is.null(got)) {
    return(jsonlite_fn("fromJSON")(text, simplifyVector = TRUE, simplifyDataFrame = FALSE,
                                   simplifyMatrix = FALSE))
  }
  got[[1L]]
}

# ---- writing -----------------------------------------------------------------------------
json_writer <- local({
  controls <- setdiff(1:31, c(8L, 9L, 10L, 12L, 13L))
  control_chars <- vapply(controls, intToUtf8, "")
  control_escapes <- sprintf("\\u%04x", controls)

  quote_strings <- function(x) {
    if (!length(x)) return(character())
    x <- enc2utf8(x)
    if (any(grepl("[\"\\\\\001-\037]", x, perl = TRUE))) {
      x <- gsub("\\", "\\\\", x, fixed = TRUE)
      x <- gsub("\"", "\\\"", x, fixed = TRUE)
      x <- gsub("\n", "\\n", x, fixed = TRUE)
      x <- gsub("\t", "\\t", x, fixed = TRUE)
      x <- gsub("\r", "\\r", x, fixed = TRUE)
      x <- gsub("\b", "\\b", x, fixed = TRUE)
      x <- gsub("\f", "\\f", x, fixed = TRUE)
      if (any(grepl("[\001-\037]", x, perl = TRUE))) {
        for (i in seq_along(controls)) {
          x <- gsub(control_chars[[i]], control_escapes[[i]], x, fixed = TRUE)
        }
      }
    }
    paste0("\"", x, "\"")
  }

  delegate <- function(x) {
    as.character(jsonlite_fn("toJSON")(x, auto_unbox = TRUE, null = "null", na = "null",
                                        digits = NA))
  }

  value <- function(x) {
    if (is.null(x)) return("null")
    boxed <- FALSE
    cls <- oldClass(x)
    if (!is.null(cls)) {
      if (identical(cls, "AsIs")) {
        boxed <- TRUE
        oldClass(x) <- NULL
      } else if (identical(cls, "factor")) {
        x <- as.character(x)
      } else {
        return(delegate(x))
      }
    }
    if (!is.null(attr(x, "dim", exact = TRUE))) return(delegate(x))
    if (is.list(x)) {
      if (!is.null(x) && !is.vector(x, "list")) return(delegate(x))
      items <- vapply(x, value, "", USE.NAMES = FALSE)
      keys <- names(x)
      if (!length(x)) return(if (is.null(keys)) "[]" else "{}")
      if (is.null(keys)) return(paste0("[", paste(items, collapse = ","), "]"))
      missing <- is.na(keys) | !nzchar(keys)
      keys[missing] <- as.character(which(missing))
      if (anyDuplicated(keys)) keys <- make.unique(keys)
      return(paste0("{", paste0(quote_strings(keys), ":", items, collapse = ","), "}"))
    }
    out <- switch(typeof(x),
      logical = c("false", "true")[x + 1L],
      integer = as.character(x),
      double = sprintf("%.15g", x),
      character = quote_strings(x),
      return(delegate(x))
    )
    out[if (is.double(x)) !is.finite(x) else is.na(x)] <- "null"
    if (length(out) == 1L && !boxed) return(out)
    paste0("[", paste(out, collapse = ","), "]")
  }
  value
})

to_json <- function(x) {
  if (inherits(x, "json")) return(as.character(x)) # jsonlite::toJSON output, as it is
  json_writer(x)
}
