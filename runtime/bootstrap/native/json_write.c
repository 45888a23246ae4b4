/* rlayer native part: writing JSON as jsonlite::toJSON does (native.h says which). */
#include "native.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  char *buf; /* R_alloc: freed when .Call returns */
  size_t len, cap;
  int bail;
} writer;

static void reserve(writer *w, size_t more) {
  if (w->len + more <= w->cap) return;
  size_t cap = w->cap ? w->cap : 256;
  while (cap < w->len + more) cap *= 2;
  char *buf = R_alloc(cap, 1);
  if (w->len) memcpy(buf, w->buf, w->len);
  w->buf = buf;
  w->cap = cap;
}

static void put(writer *w, const char *s, size_t n) {
  reserve(w, n);
  memcpy(w->buf + w->len, s, n);
  w->len += n;
}

static void put_c(writer *w, char c) {
  reserve(w, 1);
  w->buf[w->len++] = c;
}

/* A string as jsonlite quotes it: \" \\ and the control characters escaped, the rest
 * (non-ASCII included) as it is, in UTF-8. */
static void put_string(writer *w, SEXP s) {
  if (Rf_getCharCE(s) == CE_BYTES) {
    w->bail = 1;
    return;
  }
  const char *c = Rf_translateCharUTF8(s); /* CHAR(s) itself for ASCII and UTF-8 */
  size_t n = strlen(c);
  reserve(w, n * 6 + 2);
  char *o = w->buf + w->len;
  *o++ = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)c[i];
    if (ch >= 0x20 && ch != '"' && ch != '\\') {
      *o++ = (char)ch;
      continue;
    }
    *o++ = '\\';
    switch (ch) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '\n': *o++ = 'n'; break;
    case '\t': *o++ = 't'; break;
    case '\r': *o++ = 'r'; break;
    case '\b': *o++ = 'b'; break;
    case '\f': *o++ = 'f'; break;
    default: o += sprintf(o, "u%04x", ch);
    }
  }
  *o++ = '"';
  w->len = (size_t)(o - w->buf);
}

/* Element i of an atomic vector (factors: their level). */
static void put_element(writer *w, SEXP x, R_xlen_t i, SEXP levels) {
  char num[32];
  switch (TYPEOF(x)) {
  case LGLSXP: {
    int v = LOGICAL(x)[i];
    if (v == NA_LOGICAL) put(w, "null", 4);
    else if (v) put(w, "true", 4);
    else put(w, "false", 5);
    break;
  }
  case INTSXP: {
    int v = INTEGER(x)[i];
    if (v == NA_INTEGER) put(w, "null", 4);
    else if (levels != R_NilValue) put_string(w, STRING_ELT(levels, v - 1));
    else put(w, num, (size_t)snprintf(num, sizeof(num), "%d", v));
    break;
  }
  case REALSXP: {
    double v = REAL(x)[i];
    if (!isfinite(v)) put(w, "null", 4);
    else put(w, num, (size_t)snprintf(num, sizeof(num), "%.15g", v));
    break;
  }
  default: {
    SEXP s = STRING_ELT(x, i);
    if (s == NA_STRING) put(w, "null", 4);
    else put_string(w, s);
  }
  }
}

/* An object's keys as jsonlite writes them: a missing name is the member's position, and
 * repeated names are made unique by R's make.unique(), as jsonlite does. */
static SEXP unique_keys(SEXP keys) {
  R_xlen_t n = XLENGTH(keys);
  int missing = 0;
  for (R_xlen_t i = 0; i < n && !missing; i++) {
    SEXP k = STRING_ELT(keys, i);
    missing = k == NA_STRING || !LENGTH(k);
  }
  if (!missing && !Rf_any_duplicated(keys, FALSE)) return keys;
  SEXP out = PROTECT(Rf_duplicate(keys));
  char num[32];
  for (R_xlen_t i = 0; i < n; i++) {
    SEXP k = STRING_ELT(out, i);
    if (k == NA_STRING || !LENGTH(k)) {
      snprintf(num, sizeof(num), "%lld", (long long)i + 1);
      SET_STRING_ELT(out, i, Rf_mkChar(num));
    }
  }
  if (Rf_any_duplicated(out, FALSE)) {
    SEXP call = PROTECT(Rf_lang2(Rf_install("make.unique"), out));
    out = Rf_eval(call, R_BaseEnv);
    UNPROTECT(1);
  }
  UNPROTECT(1);
  return out;
}

static int is_class(SEXP cls, const char *name) {
  return TYPEOF(cls) == STRSXP && XLENGTH(cls) == 1 && !strcmp(CHAR(STRING_ELT(cls, 0)), name);
}

static void write_value(writer *w, SEXP x, int depth) {
  if (w->bail) return;
  if (x == R_NilValue) {
    put(w, "null", 4);
    return;
  }
  if (depth > MAX_DEPTH) {
    w->bail = 1;
    return;
  }
  int boxed = 0;
  SEXP levels = R_NilValue;
  /* A class of "AsIs" (I(): an array even of one) or "factor"; any other class and any dim
   * (data frames, dates, matrices, ...) are jsonlite's to write. Names are an object's
   * keys; other attributes are not written, by jsonlite either. */
  SEXP cls = Rf_getAttrib(x, R_ClassSymbol);
  if (cls != R_NilValue) {
    if (is_class(cls, "AsIs")) {
      boxed = 1;
    } else if (is_class(cls, "factor") && TYPEOF(x) == INTSXP) {
      levels = Rf_getAttrib(x, R_LevelsSymbol);
      if (TYPEOF(levels) != STRSXP) levels = R_NilValue;
    }
    if (!boxed && levels == R_NilValue) {
      w->bail = 1;
      return;
    }
  }
  SEXPTYPE type = TYPEOF(x);
  if ((type != VECSXP && type != LGLSXP && type != INTSXP && type != REALSXP &&
       type != STRSXP) || Rf_getAttrib(x, R_DimSymbol) != R_NilValue) {
    w->bail = 1;
    return;
  }
  R_xlen_t n = XLENGTH(x);
  if (levels != R_NilValue) {
    for (R_xlen_t i = 0; i < n; i++) {
      int v = INTEGER(x)[i];
      if (v != NA_INTEGER && (v < 1 || v > XLENGTH(levels))) {
        w->bail = 1;
        return;
      }
    }
  }
  switch (type) {
  case VECSXP: {
    SEXP keys = Rf_getAttrib(x, R_NamesSymbol);
    if (!n) {
      put(w, keys == R_NilValue ? "[]" : "{}", 2);
      return;
    }
    if (keys != R_NilValue) keys = unique_keys(keys);
    PROTECT(keys);
    put_c(w, keys == R_NilValue ? '[' : '{');
    for (R_xlen_t i = 0; i < n; i++) {
      if (i) put_c(w, ',');
      if (keys != R_NilValue) {
        put_string(w, STRING_ELT(keys, i));
        put_c(w, ':');
      }
      write_value(w, VECTOR_ELT(x, i), depth + 1);
      if (w->bail) break;
    }
    UNPROTECT(1);
    put_c(w, keys == R_NilValue ? ']' : '}');
    return;
  }
  default:
    if (n == 1 && !boxed) {
      put_element(w, x, 0, levels);
      return;
    }
    put_c(w, '[');
    for (R_xlen_t i = 0; i < n; i++) {
      if (i) put_c(w, ',');
      put_element(w, x, i, levels);
    }
    put_c(w, ']');
  }
}

/* rl_json_write(x): the JSON text (a UTF-8 string), or NULL when jsonlite must write it. */
SEXP rl_json_write(SEXP x) {
  writer w = {0};
  write_value(&w, x, 0);
  if (w.bail || w.len > INT_MAX) return R_NilValue;
  return Rf_ScalarString(Rf_mkCharLenCE(w.buf ? w.buf : "", (int)w.len, CE_UTF8));
}
