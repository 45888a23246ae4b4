# rlayer: response streaming. runtime.R sources this file into the loop's environment when
# the handler has a `stream` argument:
#
#   handler <- function(event, context, stream) {
#     stream$http(200L, list(`Content-Type` = "text/plain"))  # Function URLs; optional
#     for (i in 1:3) { stream$write(sprintf("part %d\n", i)); Sys.sleep(1) }
#   }
#
# stream$write(x) sends x (text, or a raw vector) at once as one chunk of
# POST /invocation/{id}/response with Lambda-Runtime-Function-Response-Mode: streaming and
# chunked transfer. stream$content_type(type) (before the first write) sets its type,
# application/octet-stream by default. stream$http(status, headers, cookies) (instead)
# starts the HTTP integration form a Function URL in RESPONSE_STREAM mode reads: content
# type application/vnd.awslambda.http-integration-response, the JSON prelude, 8 NUL bytes,
# then the body. An error after the first write ends the stream with the trailers
# Lambda-Runtime-Function-Error-Type and -Error-Body (the error JSON, base64). A handler that
# writes nothing answers as any other: its value, or its error.

stream_trailers <- "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"
http_integration_type <- "application/vnd.awslambda.http-integration-response"

new_stream <- function(request_id) {
  started <- FALSE
  type <- "application/octet-stream"

  as_bytes <- function(x) {
    if (is.raw(x)) x else charToRaw(enc2utf8(paste(as.character(x), collapse = "")))
  }
  chunk <- function(bytes) {
    if (length(bytes)) writeBin(c(charToRaw(sprintf("%x\r\n", length(bytes))), bytes, crlf), conn)
  }
  start <- function(content_type) {
    # A fresh connection: a streamed request cannot be sent again if a kept-alive one
    # turns out to be closed, as http() does with the others.
    disconnect()
    connect()
    writeBin(charToRaw(paste0(
      "POST ", invocation_path(request_id, "response"), " HTTP/1.1\r\nHost: ", api, "\r\n",
      "Content-Type: ", content_type, "\r\n",
      "Lambda-Runtime-Function-Response-Mode: streaming\r\n",
      "Transfer-Encoding: chunked\r\nTrailer: ", stream_trailers, "\r\n\r\n"
    )), conn)
    started <<- TRUE
  }
  not_started <- function(what) {
    if (started) stop("stream$", what, "() must come before the first stream$write()", call. = FALSE)
  }
  # The end of the request (the last chunk and trailers), then the Runtime API's answer.
  end <- function(last) {
    flush(stdout())
    answer <- tryCatch({
      writeBin(charToRaw(last), conn)
      read_response()
    }, error = function(e) e)
    if (inherits(answer, "error")) {
      log_line("rlayer runtime: the streamed response for ", request_id, " broke off: ",
               conditionMessage(answer))
      disconnect()
    } else if (answer$status >= 300L) {
      log_line("rlayer runtime: the Runtime API answered ", answer$status,
               " to the streamed response for ", request_id)
    }
    invisible(NULL)
  }

  list(
    # What the handler gets.
    writer = list(
      write = function(x) {
        if (!started) start(type)
        chunk(as_bytes(x))
        invisible(NULL)
      },
      content_type = function(content_type) {
        not_started("content_type")
        type <<- content_type
        invisible(NULL)
      },
      http = function(status = 200L, headers = list(), cookies = character()) {
        not_started("http")
        if (!length(headers)) headers <- structure(list(), names = character())
        prelude <- to_json(list(statusCode = as.integer(status), headers = as.list(headers),
                                cookies = I(as.character(cookies))))
        start(http_integration_type)
        chunk(c(as_bytes(prelude), as.raw(rep(0L, 8L))))
        invisible(NULL)
      }
    ),
    started = function() started,
    finish = function() end("0\r\n\r\n"),
    fail = function(type, message, trace) {
      log_error(type, message, trace, request_id)
      body <- helper_env()$base64_encode(error_body(type, message, trace))
      end(paste0("0\r\nLambda-Runtime-Function-Error-Type: ", type,
                 "\r\nLambda-Runtime-Function-Error-Body: ", body, "\r\n\r\n"))
    }
  )
}
