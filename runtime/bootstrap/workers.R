# rlayer: many events per execution environment (Lambda Managed Instances). runtime.R
# sources this file into the loop's environment only when AWS_LAMBDA_MAX_CONCURRENCY is
# above 1, after the handler is sourced.
#
# The process forks that many workers (parallel's mcfork: R's own package, and a fork
# shares the sourced handler and loaded packages copy-on-write). Each worker runs the loop
# on its own connection to the Runtime API, so request ids, context and _X_AMZN_TRACE_ID
# (an environment variable: each process has its own) stay apart. A worker tells the
# parent through parallel's pipe which event it is serving; when a worker dies mid-event,
# the parent answers that event with Runtime.ExitError and forks a replacement.

run_workers <- function(n, serve) {
  mcfork <- get("mcfork", envir = asNamespace("parallel"))
  select_children <- get("selectChildren", envir = asNamespace("parallel"))
  read_child <- get("readChild", envir = asNamespace("parallel"))
  send_master <- get("sendMaster", envir = asNamespace("parallel"))
  serving <- list() # worker pid (as text) -> the request id it is serving, or ""

  start_worker <- function() {
    process <- mcfork()
    if (inherits(process, "masterProcess")) {
      # The worker. Its connection is its own: the parent's (if any) is left alone.
      conn <<- NULL
      log_capture_text <<- TRUE
      # "-" between events: an empty message would read as the worker's end.
      on_event <<- function(request_id) {
        send_master(charToRaw(if (nzchar(request_id)) request_id else "-"))
      }
      serve() # never returns
    }
    serving[[as.character(process$pid)]] <<- ""
  }

  for (i in seq_len(n)) start_worker()
  log_line("rlayer runtime: ", n, " workers serve events (AWS_LAMBDA_MAX_CONCURRENCY)",
           level = "INFO")
  repeat {
    ready <- select_children(timeout = -1)
    if (is.null(ready)) break # no workers left (cannot happen: each is replaced)
    if (is.logical(ready)) next # interrupted
    for (pid in ready) {
      key <- as.character(pid)
      got <- read_child(pid)
      if (is.raw(got)) {
        text <- rawToChar(got)
        serving[[key]] <- if (identical(text, "-")) "" else text
        next
      }
      # The worker is gone (its pipe closed): answer its event, start another.
      request_id <- serving[[key]]
      serving[[key]] <- NULL
      if (!is.null(request_id) && nzchar(request_id)) {
        message <- sprintf("RequestId: %s Error: the worker serving it (pid %s) exited",
                           request_id, key)
        log_error("Runtime.ExitError", message, request_id = request_id)
        post_error(invocation_path(request_id, "error"), "Runtime.ExitError", message)
        # Workers forked later must not share this connection.
        disconnect()
      } else {
        # Between events a worker only exits when the Runtime API is gone or refused its
        # /next, which ends a single-process runtime too: end the environment, not loop.
        log_line("rlayer runtime: worker ", key, " exited between events; exiting")
        pids <- as.integer(names(serving))
        if (length(pids)) tools::pskill(pids, tools::SIGKILL)
        quit(save = "no", status = 1L)
      }
      start_worker()
    }
  }
  quit(save = "no", status = 1L)
}
