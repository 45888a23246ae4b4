# Compares the runtime's JSON (runtime/bootstrap/json.R and native/) with jsonlite on a
# corpus. Rscript json_corpus.R JSON_R NATIVE_SO TEXTS_DIR: every file in TEXTS_DIR is a JSON
# text (read as the loop reads an event: its bytes, and as a string); values to write come
# from the texts and from a seeded generator. Prints one line per disagreement
# ("MISMATCH ...") and a last line of counts.
args <- commandArgs(trailingOnly = TRUE)
native <- getNativeSymbolInfo(c("rl_json_read", "rl_json_write"), dyn.load(args[[2L]]))
sys.source(args[[1L]], envir = environment())
library(jsonlite)

read_text <- function(path) {
  text <- rawToChar(readBin(path, "raw", file.size(path)))
  Encoding(text) <- "UTF-8"
  text
}
theirs_read <- function(text) {
  tryCatch(
    fromJSON(text, simplifyVector = TRUE, simplifyDataFrame = FALSE, simplifyMatrix = FALSE),
    error = function(e) structure(conditionMessage(e), class = "failed")
  )
}
theirs_write <- function(x) {
  tryCatch(
    enc2utf8(as.character(toJSON(x, auto_unbox = TRUE, null = "null", na = "null",
                                 digits = NA))),
    error = function(e) structure(conditionMessage(e), class = "failed")
  )
}
ours <- function(f, x) {
  tryCatch(f(x), error = function(e) structure(conditionMessage(e), class = "failed"))
}
same <- function(a, b) {
  if (inherits(a, "failed") || inherits(b, "failed")) {
    return(inherits(a, "failed") && inherits(b, "failed"))
  }
  identical(a, b)
}
show <- function(x) substr(paste(deparse(x, nlines = 3L), collapse = " "), 1L, 200L)

counts <- c(texts = 0L, base_reader = 0L, mutations = 0L, values = 0L, base_writer = 0L,
            mismatches = 0L)
small_texts <- list()
mismatch <- function(what, input, a, b) {
  counts[["mismatches"]] <<- counts[["mismatches"]] + 1L
  cat("MISMATCH", what, show(input), "\n  ours:    ", show(a), "\n  jsonlite:", show(b), "\n")
}

# Counts what jsonlite was asked to do, to tell the base writer's values from the others.
delegated <- 0L
real_jsonlite_fn <- jsonlite_fn
jsonlite_fn <- function(name) {
  delegated <<- delegated + 1L
  real_jsonlite_fn(name)
}

check_write <- function(x, label) {
  counts[["values"]] <<- counts[["values"]] + 1L
  before <- delegated
  a <- ours(to_json, x)
  if (!inherits(a, "failed")) a <- enc2utf8(a)
  if (delegated == before) counts[["base_writer"]] <<- counts[["base_writer"]] + 1L
  b <- theirs_write(x)
  if (!same(a, b)) mismatch(paste("write", label), x, a, b)
}

for (path in sort(list.files(args[[3L]], full.names = TRUE))) {
  text <- read_text(path)
  counts[["texts"]] <- counts[["texts"]] + 1L
  expected <- theirs_read(text)
  got <- ours(from_json, text)
  if (!same(got, expected)) mismatch(paste("read", basename(path)), text, got, expected)
  got <- ours(from_json, charToRaw(text))
  if (!same(got, expected)) mismatch(paste("read bytes", basename(path)), text, got, expected)
  # The native reader itself: it must agree whenever it answers.
  base <- .Call(native$rl_json_read, text)
  if (is.null(base) && !inherits(expected, "failed")) cat("HANDED", basename(path), "\n")
  if (!is.null(base)) {
    counts[["base_reader"]] <- counts[["base_reader"]] + 1L
    if (!same(base[[1L]], expected)) {
      mismatch(paste("native read", basename(path)), text, base[[1L]], expected)
    }
  }
  if (!inherits(expected, "failed")) check_write(expected, basename(path))
  if (nchar(text, "bytes") < 4000L) small_texts[[length(small_texts) + 1L]] <- text
}

# Mutations of the small texts (a byte changed, the text cut, a piece repeated): whatever
# the reader makes of them (its own value, or jsonlite's value or error) is jsonlite's.
set.seed(160)
for (i in seq_len(4000L)) {
  bytes <- charToRaw(small_texts[[sample(length(small_texts), 1L)]])
  if (length(bytes) < 2L) next
  at <- sample(length(bytes), 1L)
  bytes <- switch(sample(3L, 1L),
    replace(bytes, at, as.raw(sample(c(1:255, rep(utf8ToInt("{}[],:\"0-e"), 20L)), 1L))),
    bytes[seq_len(at - 1L)],
    c(bytes[seq_len(at)], bytes[at:length(bytes)])
  )
  text <- rawToChar(bytes)
  Encoding(text) <- "UTF-8"
  counts[["mutations"]] <- counts[["mutations"]] + 1L
  expected <- suppressWarnings(theirs_read(text))
  got <- suppressWarnings(ours(from_json, bytes))
  if (!same(got, expected)) mismatch("read mutation", text, got, expected)
}

# Generated values: what handlers return.
set.seed(16)
edge_numbers <- c(0, -0, 1, -1, 0.1, 1 / 3, 2 / 3, pi, exp(1), 1e15, 1e16, 1e-5, 1e-4,
                  123456.7, 2^31 - 1, 2^31, -2^31, 2^53, 2^53 + 1, 1e300, -1e-300,
                  .Machine$double.xmax, .Machine$double.xmin, 4.9e-324, .Machine$double.eps,
                  NA, NaN, Inf, -Inf)
strings <- c("", "plain", "quote \" backslash \\ slash /", "tab\tnewline\ncr\r",
             "\b\f", intToUtf8(1:31), "\u00e9\u00fc\u00df", "\u4e2d\u6587",
             "\U0001F600 \U0001F4A9", "\u2028\u2029", "\ufeffbom", "NA", "null", NA)
latin1 <- "caf\xe9"
Encoding(latin1) <- "latin1"
random_scalar <- function() {
  switch(sample(6L, 1L),
    sample(c(TRUE, FALSE, NA), 1L),
    sample(c(-5:5, .Machine$integer.max, -.Machine$integer.max, NA_integer_), 1L),
    sample(edge_numbers, 1L) * sample(c(1, runif(1) * 10^sample(-20:20, 1L)), 1L),
    sample(strings, 1L),
    NULL,
    factor(sample(c("a", "b", NA), 1L))
  )
}
atomic_vector <- function(x) unlist(x[!vapply(x, is.null, NA) & !vapply(x, is.factor, NA)])
random_value <- function(depth = 0L) {
  kind <- if (depth > 4L) 1L else sample(5L, 1L, prob = c(4, 2, 2, 2, 1))
  switch(kind,
    random_scalar(),
    atomic_vector(replicate(sample(0:6, 1L), random_scalar(), simplify = FALSE)),
    replicate(sample(0:4, 1L), random_value(depth + 1L), simplify = FALSE),
    {
      items <- replicate(sample(0:4, 1L), random_value(depth + 1L), simplify = FALSE)
      names(items) <- sample(c("a", "b", "key with space", "\u00e9", "\"q\"", "", NA),
                             length(items), replace = TRUE)
      items
    },
    I(sample(list(1, "x", TRUE, NA, c(1, 2)), 1L)[[1L]])
  )
}
fixed_values <- list(
  NULL, list(), structure(list(), names = character()), list(a = NULL, b = list(NULL)),
  edge_numbers, as.list(edge_numbers), strings, as.list(strings), latin1, list(x = latin1),
  c(a = 1, b = 2), factor(c("x", NA, "y")), I(1), I("a"), I(NA), I(list(1)),
  I(character()), integer(), logical(), character(), c(TRUE, NA, FALSE),
  list(ok = TRUE, n = 1:3, nested = list(list(a = 1), list(a = NULL), list())),
  list(1, b = 2, 3), setNames(list(1, 2), c("a", NA)),
  # Attributes jsonlite does not write.
  structure(list(a = 1, b = "x"), note = "n"), structure(1:3, note = "n"),
  structure(list(1, 2), comment = "c"), structure("s", label = list(1)),
  # Values JSON has no form for (jsonlite's error, whoever writes them).
  sum, list(f = function() 1), new.env(), list(quote(x)),
  # Classes jsonlite writes (here too, through jsonlite): inside lists as well.
  data.frame(a = 1:2, b = c("x", NA)), list(frame = data.frame(a = 1)), matrix(1:6, 2),
  as.Date("2024-02-29"), list(when = as.POSIXct("2024-01-01 12:00:00", tz = "UTC")),
  as.raw(0:3), structure(1, class = "unknown_class"), 3 + 2i,
  # Numbers at the edges, many: every magnitude of double.
  runif(500) * 10^sample(-307:307, 500L, replace = TRUE),
  -runif(200) * 10^sample(-320:-300, 200L, replace = TRUE),
  # Large: about 6 MB each.
  list(body = strrep("\u00e9abc\u00fc", 1.2e6)),
  lapply(seq_len(30000), function(i) {
    list(id = i, name = paste0("item-", i, "-\u00e9"), tags = c("a", "b"), score = i / 7,
         missing = NA, nothing = NULL)
  }),
  runif(3e5) * 1e6
)
for (i in seq_along(fixed_values)) check_write(fixed_values[[i]], paste("fixed", i))
for (i in seq_len(3000L)) check_write(random_value(), paste("random", i))

cat("COUNTS", paste(names(counts), counts, sep = "=", collapse = " "), "\n")
