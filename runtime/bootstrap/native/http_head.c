/* rlayer native part: the head of an HTTP answer (native.h says why C). */
#include "native.h"

#include <string.h>

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* rl_http_head(buf): NULL until buf holds a whole head (up to the empty line); then
 * list(status, headers = named list of strings, names in lower case, values trimmed,
 * rest = the bytes after the head). */
SEXP rl_http_head(SEXP buf) {
  const unsigned char *b = RAW(buf);
  R_xlen_t n = XLENGTH(buf), end = -1;
  for (R_xlen_t i = 3; i < n; i++) {
    if (b[i] == '\n' && b[i - 1] == '\r' && b[i - 2] == '\n' && b[i - 3] == '\r') {
      end = i - 3;
      break;
    }
  }
  if (end < 0) return R_NilValue;
  int status = NA_INTEGER;
  if (end >= 12 && b[9] >= '0' && b[9] <= '9') {
    status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
  }
  /* Lines after the status line: count them, then fill. */
  int lines = 0;
  for (R_xlen_t i = 0; i + 1 < end; i++) {
    if (b[i] == '\r' && b[i + 1] == '\n') lines++;
  }
  SEXP values = PROTECT(Rf_allocVector(VECSXP, lines));
  SEXP names = PROTECT(Rf_allocVector(STRSXP, lines));
  char name[256];
  int k = 0;
  R_xlen_t pos = 0;
  while (pos < end && b[pos] != '\n') pos++; /* skip the status line */
  pos++;
  while (pos < end + 2 && k < lines) {
    R_xlen_t eol = pos;
    while (eol < end && b[eol] != '\r') eol++;
    R_xlen_t colon = pos;
    while (colon < eol && b[colon] != ':') colon++;
    if (colon < eol && colon - pos < (R_xlen_t)sizeof(name)) {
      int len = (int)(colon - pos);
      for (int j = 0; j < len; j++) name[j] = (char)lower(b[pos + j]);
      R_xlen_t v = colon + 1, ve = eol;
      while (v < ve && (b[v] == ' ' || b[v] == '\t')) v++;
      while (ve > v && (b[ve - 1] == ' ' || b[ve - 1] == '\t')) ve--;
      SET_STRING_ELT(names, k, Rf_mkCharLenCE(name, len, CE_UTF8));
      SET_VECTOR_ELT(values, k, Rf_ScalarString(
        Rf_mkCharLenCE((const char *)b + v, (int)(ve - v), CE_UTF8)));
      k++;
    }
    pos = eol + 2;
  }
  int protected = 2;
  if (k < lines) { /* lines without a colon: not headers */
    values = PROTECT(Rf_xlengthgets(values, k));
    names = PROTECT(Rf_xlengthgets(names, k));
    protected += 2;
  }
  Rf_setAttrib(values, R_NamesSymbol, names);
  SEXP rest = PROTECT(Rf_allocVector(RAWSXP, n - end - 4));
  if (n - end - 4 > 0) memcpy(RAW(rest), b + end + 4, (size_t)(n - end - 4));
  SEXP out = PROTECT(Rf_allocVector(VECSXP, 3));
  SET_VECTOR_ELT(out, 0, Rf_ScalarInteger(status));
  SET_VECTOR_ELT(out, 1, values);
  SET_VECTOR_ELT(out, 2, rest);
  SEXP out_names = PROTECT(Rf_allocVector(STRSXP, 3));
  SET_STRING_ELT(out_names, 0, Rf_mkChar("status"));
  SET_STRING_ELT(out_names, 1, Rf_mkChar("headers"));
  SET_STRING_ELT(out_names, 2, Rf_mkChar("rest"));
  Rf_setAttrib(out, R_NamesSymbol, out_names);
  UNPROTECT(protected + 3);
  return out;
}
