# rlayer: log lines, as Lambda's advanced logging controls define them. Sourced by
# runtime.R into the loop's environment (base R only: this runs on every cold start).
#
# AWS_LAMBDA_LOG_FORMAT=JSON: every line the runtime writes, and a handler's message(),
# warning() and errors, is one JSON object on stderr: timestamp (RFC 3339, UTC), level,
# message, requestId (during an event); errors add errorType, errorMessage, stackTrace.
# Otherwise (the default) lines are text: "[LEVEL] RequestId: <id> <message>".
# AWS_LAMBDA_LOG_LEVEL (TRACE, DEBUG, INFO, WARN, ERROR, FATAL) drops lines below it.
#
# Each line is ONE write(2) of at most PIPE_BUF (4096) bytes, so lines that several
# workers write at once stay whole; a longer message is cut to fit.

log_json <- identical(toupper(Sys.getenv("AWS_LAMBDA_LOG_FORMAT")), "JSON")
log_levels <- c(TRACE = 1L, DEBUG = 2L, INFO = 3L, WARN = 4L, ERROR = 5L, FATAL = 6L)
log_threshold <- log_levels[toupper(Sys.getenv("AWS_LAMBDA_LOG_LEVEL", "TRACE"))]
if (is.na(log_threshold)) log_threshold <- 1L
log_line_max <- 4095L # PIPE_BUF less the newline
# The event being served (NULL between events): every line carries it.
current_request_id <- NULL
# Workers (workers.R) turn message() and warning() into log lines in text form too, so
# that lines of events served side by side stay whole and name their event.
log_capture_text <- FALSE

# A JSON string literal. Hand-written (why: JSON logging must not need jsonlite loaded,
# and a log line must never fail on what it is given).
json_str <- function(x) {
  x <- enc2utf8(paste(as.character(x), collapse = "\n"))
  if (!validUTF8(x)) x <- iconv(x, "UTF-8", "UTF-8", sub = "?") # bytes that are no text
  x <- gsub("\\", "\\\\", x, fixed = TRUE)
  x <- gsub("\"", "\\\"", x, fixed = TRUE)
  x <- gsub("\n", "\\n", x, fixed = TRUE)
  x <- gsub("\r", "\\r", x, fixed = TRUE)
  x <- gsub("\t", "\\t", x, fixed = TRUE)
  codes <- utf8ToInt(x)
  if (!anyNA(codes) && any(codes < 32L)) {
    for (code in unique(codes[codes < 32L])) {
      x <- gsub(intToUtf8(code), sprintf("\\u%04x", code), x, fixed = TRUE)
    }
  }
  paste0("\"", x, "\"")
}

# A field's value in a JSON line: numbers and logicals as themselves, the rest as text.
json_field <- function(value) {
  if (length(value) == 1L && !inherits(value, "AsIs") && !is.na(value)) {
    if (is.logical(value)) return(if (value) "true" else "false")
    if (is.numeric(value) && is.finite(value)) return(format(value, digits = 15L))
  }
  if ((length(value) != 1L || inherits(value, "AsIs")) && is.atomic(value)) {
    value <- unclass(value)
    return(paste0("[", paste(vapply(value, json_field, ""), collapse = ","), "]"))
  }
  json_str(if (is.character(value)) value else paste(format(value), collapse = " "))
}

log_timestamp <- function() format(Sys.time(), "%Y-%m-%dT%H:%M:%OS3Z", tz = "UTC")

# Writes one log line at `level` (a name of log_levels). `fields`: more members of the
# JSON object (named; ignored in text form, but for the error fields' stack trace).
log_emit <- function(level, message, fields = NULL, request_id = current_request_id) {
  if (log_levels[[level]] < log_threshold) return(invisible(FALSE))
  message <- sub("\n$", "", paste(message, collapse = "\n"))
  if (log_json) {
    tail <- paste0(
      if (!is.null(request_id)) paste0(",\"requestId\":", json_str(request_id)),
      if (length(fields)) {
        paste0(",", vapply(names(fields), json_str, ""), ":", vapply(fields, json_field, ""),
               collapse = "")
      },
      "}"
    )
    head <- paste0("{\"timestamp\":\"", log_timestamp(), "\",\"level\":\"", level,
                   "\",\"message\":")
    room <- log_line_max - nchar(head, "bytes") - nchar(tail, "bytes")
    body <- json_str(message)
    while (nchar(body, "bytes") > room && nchar(message) > 3L) {
      # Characters to keep, in proportion to the bytes that fit (escapes, UTF-8).
      keep <- floor((nchar(message) - 3L) * room / nchar(body, "bytes")) - 4L
      message <- paste0(substr(message, 1L, max(0L, keep)), "...")
      body <- json_str(message)
    }
    line <- paste0(head, body, tail)
  } else {
    trace <- fields[["stackTrace"]]
    line <- paste0(
      "[", level, "] ", if (!is.null(request_id)) paste0("RequestId: ", request_id, " "),
      message, if (length(trace)) paste0("\n  at ", trace, collapse = "")
    )
    while (nchar(line, "bytes") > log_line_max) {
      keep <- floor(nchar(line) * log_line_max / nchar(line, "bytes")) - 4L
      line <- paste0(substr(line, 1L, keep), "...")
    }
  }
  cat(paste0(line, "\n"), file = stderr()) # one element, so one write
  invisible(TRUE)
}

# The runtime's own lines (where the old loop wrote plain text).
log_line <- function(..., level = "ERROR") log_emit(level, paste0(...))

log_error <- function(type, message, trace = character(), request_id = current_request_id) {
  log_emit("ERROR", paste0(type, ": ", message),
           list(errorType = type, errorMessage = message, stackTrace = I(trace)),
           request_id)
}

# Runs thunk() with a handler's message() and warning() turned into log lines (JSON form,
# or in workers: otherwise R writes them to stderr as it always does).
with_log_capture <- function(thunk) {
  if (!log_json && !log_capture_text) return(thunk())
  withCallingHandlers(
    thunk(),
    message = function(m) {
      log_emit("INFO", conditionMessage(m))
      invokeRestart("muffleMessage")
    },
    warning = function(w) {
      call <- conditionCall(w)
      log_emit("WARN", conditionMessage(w), if (!is.null(call)) {
        list(call = paste(deparse(call, nlines = 1L), collapse = ""))
      })
      invokeRestart("muffleWarning")
    }
  )
}

# What handlers call: lambda_log("loaded ", n, " rows", level = "DEBUG", fields = list(n = n)).
# Attached (with the event helpers) as "rlayer" on the search path, after base.
rlayer_env <- attach(NULL, name = "rlayer")
assign("lambda_log", function(..., level = "INFO", fields = NULL) {
  level <- toupper(level)
  if (is.na(log_levels[level])) {
    stop("level must be one of ", paste(names(log_levels), collapse = ", "), call. = FALSE)
  }
  if (length(fields) && (is.null(names(fields)) || any(!nzchar(names(fields))))) {
    stop("fields must be a named list", call. = FALSE)
  }
  log_emit(level, paste0(...), fields)
}, envir = rlayer_env)
