/* rlayer native part: the entry points runtime.R calls (.Call). */
#include "native.h"

#include <R_ext/Rdynload.h>

static const R_CallMethodDef calls[] = {
  {"rl_http_head", (DL_FUNC)&rl_http_head, 1},
  {"rl_json_read", (DL_FUNC)&rl_json_read, 1},
  {"rl_json_write", (DL_FUNC)&rl_json_write, 1},
  {NULL, NULL, 0},
};

void R_init_native(DllInfo *dll) {
  R_registerRoutines(dll, NULL, calls, NULL, NULL);
  R_useDynamicSymbols(dll, FALSE);
}
