# rlayer: event helpers for handlers, base R only. runtime.R sources this file the first
# time a handler uses one of them (each name in the attached "rlayer" environment is a
# promise), into an environment whose parent is the loop's (from_json, to_json).
#
#   event_kind(event)          "api_gateway_v1", "api_gateway_v2", "function_url", "sqs",
#                              "sns", "s3", "eventbridge" or "unknown"
#   http_request(event)        an API Gateway (REST v1, HTTP v2) or Function URL event as
#                              method, path, headers (lower-case names), query, path_params,
#                              cookies, body (text; base64 bodies decoded), body_raw
#   http_json_body(event)      the request body parsed as JSON
#   http_response(body, status, headers, cookies)  a proxy response; a raw body is sent
#                              base64-encoded
#   http_json(value, status, headers) / http_html(html, status, headers)
#   sqs_records(event)         id, body, attributes, message_attributes, queue_arn
#   sqs_batch_response(ids)    the partial batch answer (a handler may also just return the
#                              failed ids: on an SQS event the runtime answers with this)
#   sns_messages(event)        id, topic_arn, subject, message, timestamp, attributes
#   s3_objects(event)          bucket, key (URL-decoded), size, etag, version_id, event_name
#   eventbridge_event(event)   id, source, detail_type, detail, time, account, region, resources
#   base64_decode(text) / base64_encode(bytes)

event_kind <- function(event) {
  if (!is.list(event)) return("unknown")
  records <- event[["Records"]]
  if (is.list(records) && length(records) && is.list(records[[1L]])) {
    first <- records[[1L]]
    source <- if (!is.null(first[["eventSource"]])) first[["eventSource"]] else first[["EventSource"]]
    kind <- switch(if (is.character(source)) source else "", "aws:sqs" = "sqs",
                   "aws:sns" = "sns", "aws:s3" = "s3", "unknown")
    return(kind)
  }
  context <- event[["requestContext"]]
  if (is.list(context)) {
    if (!is.null(event[["httpMethod"]])) return("api_gateway_v1")
    if (!is.null(context[["http"]])) {
      domain <- context[["domainName"]]
      is_url <- is.character(domain) && grepl(".lambda-url.", domain, fixed = TRUE)
      return(if (is_url) "function_url" else "api_gateway_v2")
    }
  }
  if (!is.null(event[["detail-type"]]) && !is.null(event[["source"]])) return("eventbridge")
  "unknown"
}

# ---- HTTP: API Gateway v1/v2 and Function URLs --------------------------------------

# A JSON object of strings as a named list (NULL and absent both become an empty list).
as_named <- function(x) if (is.null(x) || !length(x)) structure(list(), names = character()) else as.list(x)

http_request <- function(event) {
  kind <- event_kind(event)
  if (!kind %in% c("api_gateway_v1", "api_gateway_v2", "function_url")) {
    stop("http_request: not an API Gateway or Function URL event (", kind, ")", call. = FALSE)
  }
  ctx <- event[["requestContext"]]
  headers <- as_named(event[["headers"]])
  names(headers) <- tolower(names(headers))
  body_raw <- if (is.null(event[["body"]])) raw(0) else if (isTRUE(event[["isBase64Encoded"]])) {
    base64_decode(event[["body"]])
  } else {
    charToRaw(enc2utf8(event[["body"]]))
  }
  # A binary body (NUL bytes) has no text form: body_raw holds it.
  body <- if (any(body_raw == as.raw(0L))) NA_character_ else rawToChar(body_raw)
  Encoding(body) <- "UTF-8"
  if (kind == "api_gateway_v1") {
    # Repeated query keys are only in the multi-value map: take each key's values from it.
    query <- as_named(event[["multiValueQueryStringParameters"]])
    if (!length(query)) query <- as_named(event[["queryStringParameters"]])
    query <- lapply(query, as.character)
    cookie_header <- headers[["cookie"]]
    cookies <- if (is.null(cookie_header)) character() else trimws(strsplit(cookie_header, ";")[[1L]])
    method <- event[["httpMethod"]]
    path <- event[["path"]]
    source_ip <- ctx[["identity"]][["sourceIp"]]
  } else {
    # v2 joins repeated keys' values with commas, which a value may hold too: read the
    # raw query string instead, where it is there.
    raw_query <- event[["rawQueryString"]]
    query <- if (is.character(raw_query) && nzchar(raw_query)) {
      parse_query(raw_query)
    } else {
      lapply(as_named(event[["queryStringParameters"]]),
             function(v) strsplit(v, ",", fixed = TRUE)[[1L]])
    }
    cookies <- as.character(unlist(event[["cookies"]]))
    method <- ctx[["http"]][["method"]]
    path <- event[["rawPath"]]
    source_ip <- ctx[["http"]][["sourceIp"]]
  }
  list(
    kind = kind, method = method, path = path, headers = headers, query = query,
    path_params = as_named(event[["pathParameters"]]), cookies = cookies,
    body = body, body_raw = body_raw, source_ip = source_ip
  )
}

# "a=1&b=x%20y&a=2" as list(a = c("1", "2"), b = "x y").
parse_query <- function(text) {
  pairs <- strsplit(strsplit(text, "&", fixed = TRUE)[[1L]], "=", fixed = TRUE)
  pairs <- pairs[lengths(pairs) > 0L]
  keys <- vapply(pairs, function(p) url_decode(p[[1L]]), "")
  values <- vapply(pairs, function(p) url_decode(paste(p[-1L], collapse = "=")), "")
  split(values, factor(keys, levels = unique(keys)))
}

http_json_body <- function(event) {
  body <- http_request(event)$body
  if (!nzchar(body)) return(NULL)
  from_json(body)
}

http_response <- function(body = "", status = 200L, headers = list(), cookies = NULL) {
  response <- list(statusCode = as.integer(status), headers = as_named(headers))
  if (is.raw(body)) {
    response$body <- base64_encode(body)
    response$isBase64Encoded <- TRUE
  } else {
    response$body <- paste(as.character(body), collapse = "")
    response$isBase64Encoded <- FALSE
  }
  if (length(cookies)) response$cookies <- I(as.character(cookies))
  response
}

http_json <- function(value, status = 200L, headers = list()) {
  headers[["Content-Type"]] <- "application/json"
  http_response(as.character(to_json(value)), status, headers)
}

http_html <- function(html, status = 200L, headers = list()) {
  headers[["Content-Type"]] <- "text/html; charset=utf-8"
  http_response(html, status, headers)
}

# ---- SQS, SNS, S3, EventBridge ------------------------------------------------------

records_of <- function(event, kind) {
  if (event_kind(event) != kind) {
    stop(sprintf("not an %s event (%s)", toupper(kind), event_kind(event)), call. = FALSE)
  }
  event[["Records"]]
}

sqs_records <- function(event) {
  lapply(records_of(event, "sqs"), function(r) list(
    id = r[["messageId"]], body = r[["body"]], attributes = as_named(r[["attributes"]]),
    message_attributes = as_named(r[["messageAttributes"]]), queue_arn = r[["eventSourceARN"]]
  ))
}

sqs_batch_response <- function(failed_ids = character()) {
  failed_ids <- as.character(failed_ids)
  list(batchItemFailures = lapply(failed_ids, function(id) list(itemIdentifier = id)))
}

sns_messages <- function(event) {
  lapply(records_of(event, "sns"), function(r) {
    sns <- r[["Sns"]]
    attributes <- lapply(as_named(sns[["MessageAttributes"]]), function(a) a[["Value"]])
    list(
      id = sns[["MessageId"]], topic_arn = sns[["TopicArn"]], subject = sns[["Subject"]],
      message = sns[["Message"]], timestamp = sns[["Timestamp"]], attributes = attributes
    )
  })
}

# S3 keys arrive form-encoded ("my+file%3D1.csv"). Hand-written (why: utils::URLdecode
# would load utils, which the runtime leaves out).
url_decode <- function(x) {
  bytes <- charToRaw(gsub("+", " ", x, fixed = TRUE))
  out <- raw(0)
  i <- 1L
  n <- length(bytes)
  pct <- charToRaw("%")
  while (i <= n) {
    if (bytes[[i]] == pct && i + 2L <= n) {
      out <- c(out, as.raw(strtoi(rawToChar(bytes[(i + 1L):(i + 2L)]), 16L)))
      i <- i + 3L
    } else {
      out <- c(out, bytes[[i]])
      i <- i + 1L
    }
  }
  text <- rawToChar(out)
  Encoding(text) <- "UTF-8"
  text
}

s3_objects <- function(event) {
  lapply(records_of(event, "s3"), function(r) {
    s3 <- r[["s3"]]
    object <- s3[["object"]]
    list(
      bucket = s3[["bucket"]][["name"]], key = url_decode(object[["key"]]),
      size = object[["size"]], etag = object[["eTag"]], version_id = object[["versionId"]],
      event_name = r[["eventName"]], region = r[["awsRegion"]]
    )
  })
}

eventbridge_event <- function(event) {
  if (event_kind(event) != "eventbridge") {
    stop("not an EventBridge event (", event_kind(event), ")", call. = FALSE)
  }
  list(
    id = event[["id"]], source = event[["source"]], detail_type = event[["detail-type"]],
    detail = event[["detail"]], time = event[["time"]], account = event[["account"]],
    region = event[["region"]], resources = as.character(unlist(event[["resources"]]))
  )
}

# ---- base64 (hand-written: base R has none, and the runtime loads no package for it) --

b64_alphabet <- c(LETTERS, letters, 0:9, "+", "/")

base64_decode <- function(text) {
  text <- chartr("-_", "+/", gsub("[^A-Za-z0-9+/_-]", "", text))
  v <- match(strsplit(text, "", fixed = TRUE)[[1L]], b64_alphabet) - 1L
  n <- length(v)
  if (!n) return(raw(0))
  extra <- n %% 4L
  v <- c(v, integer((4L - extra) %% 4L))
  m <- matrix(v, nrow = 4L)
  b1 <- bitwOr(bitwShiftL(m[1L, ], 2L), bitwShiftR(m[2L, ], 4L))
  b2 <- bitwAnd(bitwOr(bitwShiftL(m[2L, ], 4L), bitwShiftR(m[3L, ], 2L)), 255L)
  b3 <- bitwAnd(bitwOr(bitwShiftL(m[3L, ], 6L), m[4L, ]), 255L)
  out <- as.raw(as.vector(rbind(b1, b2, b3)))
  drop <- c(0L, 3L, 2L, 1L)[[extra + 1L]] # padding bytes that decode to nothing
  if (drop) out[seq_len(length(out) - drop)] else out
}

base64_encode <- function(bytes) {
  if (is.character(bytes)) bytes <- charToRaw(enc2utf8(paste(bytes, collapse = "")))
  n <- length(bytes)
  if (!n) return("")
  pad <- (3L - n %% 3L) %% 3L
  m <- matrix(as.integer(c(bytes, raw(pad))), nrow = 3L)
  idx <- rbind(
    bitwShiftR(m[1L, ], 2L),
    bitwOr(bitwShiftL(bitwAnd(m[1L, ], 3L), 4L), bitwShiftR(m[2L, ], 4L)),
    bitwOr(bitwShiftL(bitwAnd(m[2L, ], 15L), 2L), bitwShiftR(m[3L, ], 6L)),
    bitwAnd(m[3L, ], 63L)
  )
  chars <- b64_alphabet[as.vector(idx) + 1L]
  if (pad) chars[(length(chars) - pad + 1L):length(chars)] <- "="
  paste(chars, collapse = "")
}
