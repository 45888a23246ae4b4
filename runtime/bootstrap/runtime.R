# rlayer: the AWS Lambda Runtime API loop (API version 2018-06-01), in one R process.
#
# /opt/bootstrap starts R once on this file (source()); it sources the handler once, then
# serves events until the process is frozen or killed. Dependencies: base R only at start-up
# (every package is cold-start time; jsonlite is loaded only for values json.R hands to it).
# HTTP is hand-written on a base R socket: the Runtime API is plain HTTP/1.1 on loopback,
# and httr/curl would add ~100 ms of package loading to every cold start for nothing.
#
# Error types reported (errorType in the error JSON):
#   init errors (POST /runtime/init/error; the process then exits):
#     Runtime.MalformedHandlerName  _HANDLER is not "file.function"
#     Runtime.ImportModuleError     the handler file does not exist, or a package it loads
#                                   is not installed
#     Runtime.UserCodeSyntaxError   the handler file does not parse
#     Runtime.HandlerNotFound       the file defines no function of that name
#     Runtime.InitError             any other error while sourcing the handler file
#   invocation errors (POST /runtime/invocation/{id}/error; the loop goes on):
#     <condition class>             an R error in the handler: class(cond)[1], e.g.
#                                   "simpleError", or a class the handler gave its condition
#     Runtime.UnmarshalError        the event is not valid JSON
#     Runtime.MarshalError          the return value cannot be serialised to JSON
#     Function.ResponseSizeTooLarge the Runtime API refused the response with a 413
#     Runtime.ExitError             the worker serving the event died (workers.R)
#   an error after a streamed response began goes in its trailers instead (streaming.R)
#
# Events are parsed with simplifyVector (a JSON array of scalars becomes an atomic
# vector) but arrays of objects stay lists, so nested events keep their shape. Return
# values are serialised with length-1 vectors as scalars (wrap in I() to keep an array),
# NULL and NA as null; a "json" object (jsonlite::toJSON output) is sent as it is. Both
# as jsonlite::fromJSON/toJSON with those options do it (json.R, without loading jsonlite).
#
# The hot parts of every event (an HTTP answer's head, the event's JSON, the value's JSON)
# are C (native/, runtime/native.so in the layer, built with the layer's R): in R they
# were ~0.3 ms of every warm event.

local({
  # RLAYER_STARTUP_TIMES=1 (bench/runtime): where the cold start went, one line on stderr
  # before the first GET next; milliseconds since R started (proc.time() counts from there).
  startup <- if (nzchar(Sys.getenv("RLAYER_STARTUP_TIMES"))) c(r_ready = proc.time()[[3L]])
  mark <- function(name) if (!is.null(startup)) startup[[name]] <<- proc.time()[[3L]]
  api <- Sys.getenv("AWS_LAMBDA_RUNTIME_API")
  if (!nzchar(api)) {
    cat("rlayer runtime: AWS_LAMBDA_RUNTIME_API is not set\n", file = stderr())
    quit(save = "no", status = 1L)
  }
  colon <- regexpr(":[0-9]+$", api)
  api_host <- if (colon > 0L) substr(api, 1L, colon - 1L) else api
  api_port <- if (colon > 0L) as.integer(substring(api, colon + 1L)) else 80L
  base_path <- "/2018-06-01/runtime"
  error_content_type <- "application/vnd.aws.lambda.error+json"
  # Seconds; socket writes and connects only (reads wait on socketSelect, without limit).
  no_timeout <- 31536000L

  options(warn = 1L, keep.source = FALSE)

  now_ms <- function() as.numeric(Sys.time()) * 1000

  # The runtime's other files (logging.R, and those sourced when first needed) sit beside
  # this one; bootstrap names this file in RLAYER_RUNTIME.
  runtime_dir <- dirname(Sys.getenv("RLAYER_RUNTIME", "runtime.R"))
  source_part <- function(name) sys.source(file.path(runtime_dir, name), envir = loop_env)
  loop_env <- environment()
  source_part("logging.R") # log_line, log_error, with_log_capture, lambda_log

  # native/: rl_http_head, rl_json_read, rl_json_write (RLAYER_NATIVE: another build of it).
  native <- tryCatch({
    so <- Sys.getenv("RLAYER_NATIVE", file.path(runtime_dir, "native.so"))
    getNativeSymbolInfo(c("rl_http_head", "rl_json_read", "rl_json_write"), dyn.load(so))
  }, error = function(e) {
    log_line("rlayer runtime: cannot load the runtime's native part: ", conditionMessage(e))
    quit(save = "no", status = 1L)
  })

  # The event helpers (events.R) are read the first time a handler uses one: each name in
  # the attached "rlayer" environment is a promise that sources the file once.
  helpers <- NULL
  helper_env <- function() {
    if (is.null(helpers)) {
      helpers <<- new.env(parent = loop_env)
      sys.source(file.path(runtime_dir, "events.R"), envir = helpers)
    }
    helpers
  }
  bind_helper <- function(name) {
    delayedAssign(name, get(name, envir = helper_env()), assign.env = rlayer_env)
  }
  for (name in c("event_kind", "http_request", "http_json_body", "http_response", "http_json",
                 "http_html", "sqs_records", "sqs_batch_response", "sns_messages",
                 "s3_objects", "eventbridge_event", "base64_decode", "base64_encode")) {
    bind_helper(name)
  }

  # ---- HTTP/1.1 keep-alive client on one socket ---------------------------------------
  conn <- NULL
  head_size <- 4096L # a response head and a small body arrive in one read
  chunk_size <- 65536L
  crlf <- charToRaw("\r\n")
  chunked_end <- charToRaw("0\r\n\r\n")

  disconnect <- function() {
    if (!is.null(conn)) try(close(conn), silent = TRUE)
    conn <<- NULL
  }

  connect <- function() {
    # Non-blocking so a read returns what has arrived (a response is read in one or two
    # calls, not line by line); writes still complete (R waits until the socket takes
    # everything). "no-delay" sets TCP_NODELAY: the peer's delayed ACK would otherwise
    # stall every exchange on Nagle's algorithm.
    conn <<- socketConnection(
      api_host, api_port,
      blocking = FALSE, open = "r+b", timeout = no_timeout, options = "no-delay"
    )
  }

  # Returns the bytes that have arrived, at most `most`, waiting until there is at least
  # one (no timeout: /next may wait as long as the function is idle). Reading first and
  # waiting only when nothing came keeps R's own socket buffer out of the picture. Reads
  # ask for what the response still needs: readBin allocates all it is asked for.
  # `closed_ok`: NULL instead of an error when the connection is closed.
  receive <- function(most, closed_ok = FALSE) {
    got <- readBin(conn, "raw", most)
    if (!length(got)) {
      socketSelect(list(conn), timeout = NULL)
      got <- readBin(conn, "raw", most)
      if (!length(got)) {
        if (closed_ok) return(NULL)
        stop("connection closed by the Runtime API")
      }
    }
    got
  }

  # Reads until `buf` holds at least n bytes (collecting pieces in a list: no quadratic
  # copying of a 6 MB body).
  receive_at_least <- function(buf, n) {
    have <- length(buf)
    if (have >= n) return(buf)
    parts <- list(buf)
    while (have < n) {
      more <- receive(min(n - have, 1048576))
      parts[[length(parts) + 1L]] <- more
      have <- have + length(more)
    }
    unlist(parts, use.names = FALSE)
  }

  dechunk <- function(buf) {
    out <- list()
    pos <- 1L
    repeat {
      eol <- grepRaw(crlf, buf, offset = pos, fixed = TRUE)
      size <- strtoi(sub(";.*$", "", rawToChar(buf[pos:(eol - 1L)])), 16L)
      if (is.na(size) || size == 0L) break
      out[[length(out) + 1L]] <- buf[(eol + 2L):(eol + 1L + size)]
      pos <- eol + 4L + size
    }
    unlist(out, use.names = FALSE)
  }

  # The answer: list(status, headers (names in lower case), body).
  # NULL when the connection was closed before the answer's first byte.
  read_response <- function() {
    buf <- receive(head_size, closed_ok = TRUE)
    if (is.null(buf)) return(NULL)
    while (is.null(head <- .Call(native$rl_http_head, buf))) buf <- c(buf, receive(head_size))
    hdrs <- head$headers
    rest <- head$rest
    len <- hdrs[["content-length"]]
    te <- hdrs[["transfer-encoding"]]
    if (!is.null(len)) {
      n <- as.numeric(len)
      body <- if (n > 0) receive_at_least(rest, n)[seq_len(n)] else raw(0)
    } else if (!is.null(te) && grepl("chunked", te, ignore.case = TRUE)) {
      # No trailers from the Runtime API: the body ends at the empty last chunk.
      while (length(rest) < 5L ||
             !identical(rest[(length(rest) - 4L):length(rest)], chunked_end)) {
        rest <- c(rest, receive(chunk_size))
      }
      body <- dechunk(rest)
    } else {
      body <- raw(0)
    }
    if (identical(tolower(hdrs[["connection"]]), "close")) disconnect()
    list(status = head$status, headers = hdrs, body = body)
  }

  request_bytes <- function(method, path, body, headers) {
    head <- paste0(
      method, " ", path, " HTTP/1.1\r\nHost: ", api, "\r\n",
      if (length(headers)) paste0(names(headers), ": ", headers, "\r\n", collapse = "") else "",
      if (method == "POST") paste0("Content-Length: ", length(body), "\r\n") else "",
      "\r\n"
    )
    c(charToRaw(head), body)
  }

  # `request`: the whole request, as request_bytes() makes it.
  # `idempotent`: the request may be sent again (GET next).
  exchange <- function(request, idempotent) {
    repeat {
      reused <- !is.null(conn)
      if (!reused) connect()
      # One write for head and body: a request written in pieces stalls on Nagle too.
      writeBin(request, conn)
      answer <- read_response()
      if (!is.null(answer)) return(answer)
      disconnect()
      # A kept-alive connection the server closed as the request went out (before http()'s
      # look could see it): an idempotent request is sent again, once, on a new
      # connection, as HTTP lets a client do; anything else is the runtime's end.
      if (!(reused && idempotent)) stop("connection closed by the Runtime API")
    }
  }

  # A request and its answer. A failure on the way ends the runtime (exit_on_error()).
  http <- function(method, path, body = raw(0), headers = character()) {
    # GET next's request is always the same: made once (~10 us less per event).
    request <- if (identical(path, next_path)) next_request else {
      request_bytes(method, path, body, headers)
    }
    # A kept-alive connection the server has closed reads as ready while idle (its end of
    # file): reconnect before using it. One look instead of a tryCatch() around every
    # request, which cost ~20 us each of every warm event.
    if (!is.null(conn) && socketSelect(list(conn), timeout = 0)) disconnect()
    result <- exchange(request, idempotent = method == "GET")
    if (result$status == 500L) {
      # The Runtime API's "container error": a non-recoverable state, exit promptly.
      log_line("rlayer runtime: the Runtime API answered 500 to ", method, " ", path, "; exiting")
      quit(save = "no", status = 1L)
    }
    result
  }

  next_path <- paste0(base_path, "/invocation/next")
  next_request <- request_bytes("GET", next_path, raw(0), character())

  # Runs f() (the loop, an init error's report): an error the runtime itself meets there
  # (the Runtime API unreachable, a connection cut) is logged and ends the process, as
  # Lambda expects of a runtime that cannot go on. The handler's errors never get here.
  exit_on_error <- function(f) {
    tryCatch(f(), error = function(e) {
      log_line("rlayer runtime: ", conditionMessage(e), " (Runtime API at ", api, "); exiting")
      quit(save = "no", status = 1L)
    })
  }

  # ---- JSON ------------------------------------------------------------------------
  # to_json() and from_json(): jsonlite's results (native/); jsonlite itself is loaded
  # only for what they hand to it (json.R says what), not at start-up.
  mark("json_from")
  source_part("json.R")
  mark("json")

  error_body <- function(type, message, trace = character()) {
    body <- to_json(
      list(errorMessage = message, errorType = type, stackTrace = I(as.character(trace)))
    )
    charToRaw(enc2utf8(body))
  }

  post_error <- function(path, type, message, trace = character()) {
    http("POST", path, error_body(type, message, trace), c(
      "Content-Type" = error_content_type,
      "Lambda-Runtime-Function-Error-Type" = type
    ))
  }

  # ---- stack traces -------------------------------------------------------------------
  format_frame <- function(call) {
    text <- paste(deparse(call, width.cutoff = 120L, nlines = 1L), collapse = "")
    if (nchar(text) > 160L) text <- paste0(substr(text, 1L, 157L), "...")
    src <- attr(call, "srcref")
    if (!is.null(src)) {
      file <- attr(src, "srcfile")$filename
      if (!is.null(file)) text <- paste0(basename(file), ":", src[[1L]], " ", text)
    }
    text
  }

  # The frames from `first` (the user's code) to where the condition was signalled, newest
  # first, without our calling handler (the last frame) and R's .handleSimpleError.
  user_frames <- function(calls, first) {
    calls <- calls[-length(calls)]
    if (first > length(calls)) return(character())
    calls <- calls[first:length(calls)]
    keep <- vapply(calls, function(cl) !identical(cl[[1L]], quote(.handleSimpleError)),
                   logical(1))
    vapply(rev(calls[keep]), format_frame, character(1))
  }

  # Calls thunk() and catches any error with the user's part of the call stack. `skip` is
  # how many frames below marker() the user's code starts (thunk itself, eval, ...).
  # Returns list(ok = TRUE, value) or list(ok = FALSE, cond, trace).
  run_user_code <- function(thunk, skip) {
    trace <- character()
    first <- 0L
    marker <- function() {
      first <<- sys.nframe() + skip
      thunk()
    }
    value <- tryCatch(
      withCallingHandlers(marker(), error = function(e) {
        trace <<- user_frames(sys.calls(), first)
      }),
      error = function(e) structure(list(cond = e), class = "rlayer_failure")
    )
    if (inherits(value, "rlayer_failure")) {
      list(ok = FALSE, cond = value$cond, trace = trace)
    } else {
      list(ok = TRUE, value = value)
    }
  }

  # A function of a default package the runtime does not attach gets a hint (hints.R,
  # read only then).
  with_hint <- function(message) {
    if (!grepl("could not find function", message, fixed = TRUE)) return(message)
    if (!exists("missing_function_hint", loop_env, inherits = FALSE)) source_part("hints.R")
    paste0(message, missing_function_hint(message))
  }

  # ---- init ----------------------------------------------------------------------------
  init_fail <- function(type, message, trace = character()) {
    log_error(type, message, trace)
    exit_on_error(function() {
      post_error(paste0(base_path, "/init/error"), type, message, trace)
    })
    quit(save = "no", status = 1L)
  }

  task_root <- Sys.getenv("LAMBDA_TASK_ROOT", getwd())
  handler_name <- Sys.getenv("_HANDLER")

  # _HANDLER is "file.function"; R names may hold dots, so try each dot from the left and
  # take the first split whose file (file.R or file.r) exists: "app.my.handler" is
  # function my.handler in app.R unless app.my.R exists.
  resolve_handler <- function(spec) {
    dots <- gregexpr(".", spec, fixed = TRUE)[[1L]]
    dots <- dots[dots > 1L & dots < nchar(spec)]
    if (!length(dots)) {
      init_fail("Runtime.MalformedHandlerName",
                sprintf("bad handler '%s': expected file.function, e.g. main.handler", spec))
    }
    candidates <- character()
    for (dot in dots) {
      stem <- substr(spec, 1L, dot - 1L)
      paths <- file.path(task_root, paste0(stem, c(".R", ".r")))
      candidates <- c(candidates, paths)
      found <- paths[file.exists(paths)]
      if (length(found)) {
        return(list(file = found[[1L]], fn = substring(spec, dot + 1L)))
      }
    }
    init_fail("Runtime.ImportModuleError",
              sprintf("handler file not found for '%s': looked for %s", spec,
                      paste(candidates, collapse = ", ")))
  }

  target <- resolve_handler(handler_name)

  mark("handler_from")
  exprs <- tryCatch(parse(target$file, keep.source = TRUE, encoding = "UTF-8"),
                    error = function(e) e)
  if (inherits(exprs, "error")) {
    init_fail("Runtime.UserCodeSyntaxError", conditionMessage(exprs))
  }
  current <- 0L
  # skip = 4: thunk, then eval's two frames (the closure and the evaluation it starts).
  sourced <- with_log_capture(function() run_user_code(function() {
    for (i in seq_along(exprs)) {
      current <<- i
      eval(exprs[[i]], globalenv())
    }
    invisible(NULL)
  }, skip = 4L))
  if (!sourced$ok) {
    type <- if (inherits(sourced$cond, "packageNotFoundError")) {
      "Runtime.ImportModuleError"
    } else {
      "Runtime.InitError"
    }
    # A top-level call has no srcref of its own: give it the line of its expression.
    trace <- sourced$trace
    n <- length(trace)
    line <- attr(exprs, "srcref")[[current]][[1L]]
    if (n) trace[[n]] <- paste0(basename(target$file), ":", line, " ", trace[[n]])
    init_fail(type, with_hint(conditionMessage(sourced$cond)), trace)
  }
  rm(exprs, sourced, current)

  handler <- get0(target$fn, envir = globalenv(), mode = "function", inherits = FALSE)
  if (is.null(handler)) {
    init_fail("Runtime.HandlerNotFound",
              sprintf("%s defines no function '%s'", basename(target$file), target$fn))
  }
  handler_formals <- names(formals(handler))
  wants_context <- "context" %in% handler_formals
  wants_event <- length(handler_formals) > 0L
  # A `stream` argument: the handler may stream its response (streaming.R).
  wants_stream <- "stream" %in% handler_formals
  if (wants_stream) source_part("streaming.R")

  # ---- one invocation -------------------------------------------------------------------
  memory_mb <- suppressWarnings(as.integer(Sys.getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")))

  make_context <- function(h, request_id) {
    deadline <- as.numeric(h[["lambda-runtime-deadline-ms"]])
    client_context <- h[["lambda-runtime-client-context"]]
    identity <- h[["lambda-runtime-cognito-identity"]]
    list(
      aws_request_id = request_id,
      invoked_function_arn = h[["lambda-runtime-invoked-function-arn"]],
      deadline_ms = deadline,
      get_remaining_time_in_millis = function() max(0, deadline - now_ms()),
      function_name = Sys.getenv("AWS_LAMBDA_FUNCTION_NAME"),
      function_version = Sys.getenv("AWS_LAMBDA_FUNCTION_VERSION"),
      memory_limit_in_mb = memory_mb,
      log_group_name = Sys.getenv("AWS_LAMBDA_LOG_GROUP_NAME"),
      log_stream_name = Sys.getenv("AWS_LAMBDA_LOG_STREAM_NAME"),
      trace_id = h[["lambda-runtime-trace-id"]],
      tenant_id = h[["lambda-runtime-aws-tenant-id"]],
      client_context = if (!is.null(client_context)) from_json(client_context),
      identity = if (!is.null(identity)) from_json(identity)
    )
  }

  is_proxy_event <- function(event) {
    is.list(event) && !is.null(event[["requestContext"]]) &&
      (!is.null(event[["httpMethod"]]) || !is.null(event[["routeKey"]]))
  }

  is_sqs_event <- function(event) {
    records <- if (is.list(event)) event[["Records"]]
    is.list(records) && length(records) && is.list(records[[1L]]) &&
      identical(records[[1L]][["eventSource"]], "aws:sqs")
  }

  # API Gateway proxy integration: a list with statusCode is the proxy response (its body
  # must be a string, so anything else is serialised); any other value becomes a 200 with
  # the value as the JSON body.
  proxy_response <- function(value) {
    if (is.list(value) && !is.null(value[["statusCode"]])) {
      body <- value[["body"]]
      if (!is.null(body) && !(is.character(body) && length(body) == 1L)) {
        value[["body"]] <- as.character(to_json(body))
        if (is.null(value[["headers"]])) {
          value[["headers"]] <- list("Content-Type" = "application/json")
        }
      }
      return(value)
    }
    list(
      statusCode = 200L,
      headers = list("Content-Type" = "application/json"),
      body = as.character(to_json(value))
    )
  }

  invocation_path <- function(request_id, what) {
    paste0(base_path, "/invocation/", request_id, "/", what)
  }

  report <- function(request_id, type, message, trace = character()) {
    flush(stdout())
    log_error(type, message, trace, request_id)
    post_error(invocation_path(request_id, "error"), type, message, trace)
  }

  handle <- function(next_event) {
    h <- next_event$headers
    request_id <- h[["lambda-runtime-aws-request-id"]]
    trace_id <- h[["lambda-runtime-trace-id"]]
    if (is.null(trace_id)) Sys.unsetenv("_X_AMZN_TRACE_ID") else Sys.setenv(`_X_AMZN_TRACE_ID` = trace_id)

    body <- next_event$body
    event <- if (length(body)) tryCatch(from_json(body), error = function(e) e)
    if (inherits(event, "error")) {
      return(report(request_id, "Runtime.UnmarshalError",
                    paste("could not parse the event as JSON:", conditionMessage(event))))
    }
    context <- if (wants_context) make_context(h, request_id)
    current_request_id <<- request_id
    on.exit(current_request_id <<- NULL)
    stream <- if (wants_stream) new_stream(request_id)

    outcome <- with_log_capture(function() run_user_code(function() {
      if (wants_stream) {
        if (wants_context) {
          handler(event, context = context, stream = stream$writer)
        } else {
          handler(event, stream = stream$writer)
        }
      } else if (wants_context) {
        handler(event, context = context)
      } else if (wants_event) {
        handler(event)
      } else {
        handler()
      }
    }, skip = 2L))
    if (!outcome$ok) {
      cond <- outcome$cond
      trace <- outcome$trace
      # The outermost frame is our call; show it under the handler's own name.
      n <- length(trace)
      if (n) trace[[n]] <- sub("^handler\\(", paste0(target$fn, "("), trace[[n]])
      type <- class(cond)[[1L]]
      message <- with_hint(conditionMessage(cond))
      if (wants_stream && stream$started()) return(stream$fail(type, message, trace))
      return(report(request_id, type, message, trace))
    }
    # A streamed response is complete: the handler's value is not sent.
    if (wants_stream && stream$started()) return(stream$finish())
    value <- outcome$value
    if (is_proxy_event(event)) {
      value <- proxy_response(value)
    } else if (is.character(value) && is_sqs_event(event)) {
      # The failed message ids: SQS's partial batch answer (ReportBatchItemFailures).
      value <- helper_env()$sqs_batch_response(value)
    }
    payload <- tryCatch(charToRaw(enc2utf8(as.character(to_json(value)))),
                        error = function(e) e)
    if (inherits(payload, "error")) {
      return(report(request_id, "Runtime.MarshalError",
                    paste("could not serialise the handler's value to JSON:",
                          conditionMessage(payload))))
    }
    flush(stdout())
    answer <- http("POST", invocation_path(request_id, "response"), payload,
                   c("Content-Type" = "application/json"))
    if (answer$status == 413L) {
      detail <- tryCatch(from_json(answer$body)$errorMessage, error = function(e) NULL)
      report(request_id, "Function.ResponseSizeTooLarge", paste0(
        "response of ", length(payload), " bytes refused by the Runtime API",
        if (length(detail)) paste0(": ", detail) else ""
      ))
    } else if (answer$status >= 300L) {
      log_line("rlayer runtime: the Runtime API answered ", answer$status,
               " to the response for ", request_id)
    }
  }

  # ---- the loop ---------------------------------------------------------------------------
  # Set in workers (workers.R): told each event's request id as it starts, "" as it ends.
  on_event <- NULL
  serve <- function() exit_on_error(function() repeat {
    next_event <- http("GET", next_path)
    if (next_event$status != 200L) {
      log_line("rlayer runtime: GET next answered ", next_event$status, "; exiting")
      quit(save = "no", status = 1L)
    }
    if (!is.null(on_event)) on_event(next_event$headers[["lambda-runtime-aws-request-id"]])
    handle(next_event) # (which flushes stdout before it answers)
    if (!is.null(on_event)) on_event("")
  })
  mark("handler")
  if (!is.null(startup)) {
    cat(sprintf("rlayer startup: r_start_epoch=%.6f %s\n",
                as.numeric(Sys.time()) - proc.time()[[3L]],
                paste0(names(startup), "=", sprintf("%.3f", startup * 1000), collapse = " ")),
        file = stderr())
  }
  max_concurrency <- suppressWarnings(as.integer(Sys.getenv("AWS_LAMBDA_MAX_CONCURRENCY")))
  if (!is.na(max_concurrency) && max_concurrency > 1L) {
    source_part("workers.R")
    exit_on_error(function() run_workers(max_concurrency, serve))
  }
  serve()
})
