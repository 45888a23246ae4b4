/* rlayer: the runtime loop's native part (runtime.R loads it as runtime/native.so).
 *
 * Three things every warm event does, which cost ~0.3 ms of R code per event and take
 * microseconds here: reading the head of an HTTP answer (http_head.c), reading the event's
 * JSON (json_read.c) and writing the handler's value as JSON (json_write.c). Built in the
 * build root with the layer's own R (R CMD SHLIB -o native.so *.c), so it needs only what
 * libR.so needs; init.c registers the entry points.
 *
 * Why not a JSON library: jsonlite is the contract (its results, exactly), and jsonlite
 * costs ~70-90 ms of every cold start because its namespace loads methods. This reader and
 * writer give jsonlite's results for what events and handlers exchange, and answer NULL for
 * anything they do not vouch for (json.R then asks jsonlite, so its answer or its error is
 * the one given):
 *   rl_json_read(text)  == jsonlite::fromJSON(text, simplifyVector = TRUE,
 *                                            simplifyDataFrame = FALSE, simplifyMatrix = FALSE)
 *   rl_json_write(x)    == jsonlite::toJSON(x, auto_unbox = TRUE, null = "null",
 *                                           na = "null", digits = NA)
 * tests/integration/test_runtime_json.py holds both to jsonlite on a corpus.
 */
#ifndef RLAYER_NATIVE_H
#define RLAYER_NATIVE_H
#define R_NO_REMAP
#include <R.h>
#include <Rinternals.h>

/* Nesting deeper than this is jsonlite's (and no C stack is at risk). */
#define MAX_DEPTH 512

SEXP rl_http_head(SEXP buf);
SEXP rl_json_read(SEXP text);
SEXP rl_json_write(SEXP x);

#endif
