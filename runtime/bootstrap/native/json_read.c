/* rlayer native part: reading JSON as jsonlite::fromJSON does (native.h says which). */
#include "native.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* What a parsed value was, for the array that holds it: jsonlite makes an array of scalars
 * an atomic vector (the widest of their types), any other array a list. */
enum kind { K_NULL, K_LGL, K_INT, K_DBL, K_STR, K_EMPTY_ARRAY, K_CONTAINER };

typedef struct {
  const unsigned char *p, *end;
  int bail; /* not for this reader: jsonlite decides (or the text is not JSON) */
  int depth;
  char *scratch; /* decoded strings (R_alloc: freed when .Call returns) */
  size_t scratch_cap;
} reader;


static SEXP parse_value(reader *r, enum kind *kind);

static void skip_ws(reader *r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t')) {
    r->p++;
  }
}

static SEXP bail(reader *r) {
  r->bail = 1;
  return R_NilValue;
}

static int hex4(const unsigned char *s, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int c = s[i], d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return 0;
    v = v * 16 + (unsigned)d;
  }
  *out = v;
  return 1;
}

/* Length of the valid UTF-8 sequence at s (not past end), 0 if it is not one. */
static int utf8_seq(const unsigned char *s, const unsigned char *end) {
  unsigned c = s[0];
  int n;
  unsigned min;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) n = 2, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, min = 0x10000;
  else return 0;
  if (end - s < n) return 0;
  unsigned cp = c & (0x3F >> (n - 1));
  for (int i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

static char *put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) {
    *o++ = (char)cp;
  } else if (cp < 0x800) {
    *o++ = (char)(0xC0 | (cp >> 6));
    *o++ = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *o++ = (char)(0xE0 | (cp >> 12));
    *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *o++ = (char)(0x80 | (cp & 0x3F));
  } else {
    *o++ = (char)(0xF0 | (cp >> 18));
    *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
    *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *o++ = (char)(0x80 | (cp & 0x3F));
  }
  return o;
}

/* A string (r->p at its opening quote) as a CHARSXP in UTF-8, or NULL (bail). */
static SEXP parse_string(reader *r) {
  const unsigned char *s = ++r->p, *q = s;
  int escaped = 0;
  while (q < r->end && *q != '"') {
    if (*q < 0x20) return NULL;
    if (*q == '\\') {
      escaped = 1;
      if (++q >= r->end) return NULL;
    } else if (*q >= 0x80) {
      int n = utf8_seq(q, r->end);
      if (!n) return NULL;
      q += n - 1;
    }
    q++;
  }
  if (q >= r->end) return NULL;
  r->p = q + 1;
  size_t len = (size_t)(q - s);
  if (len > INT_MAX) return NULL;
  if (!escaped) return Rf_mkCharLenCE((const char *)s, (int)len, CE_UTF8);
  if (r->scratch_cap < len) {
    r->scratch = R_alloc(len, 1);
    r->scratch_cap = len;
  }
  char *o = r->scratch;
  for (const unsigned char *c = s; c < q; c++) {
    if (*c != '\\') {
      *o++ = (char)*c;
      continue;
    }
    c++;
    switch (*c) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '/': *o++ = '/'; break;
    case 'b': *o++ = '\b'; break;
    case 'f': *o++ = '\f'; break;
    case 'n': *o++ = '\n'; break;
    case 'r': *o++ = '\r'; break;
    case 't': *o++ = '\t'; break;
    case 'u': {
      unsigned cp, low;
      if (q - c < 5 || !hex4(c + 1, &cp)) return NULL;
      c += 4;
      /* NUL (R strings cannot hold it) and unpaired surrogates: jsonlite's call. */
      if (cp == 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) return NULL;
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (q - c < 7 || c[1] != '\\' || c[2] != 'u' || !hex4(c + 3, &low) ||
            low < 0xDC00 || low > 0xDFFF) {
          return NULL;
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        c += 6;
      }
      o = put_utf8(o, cp);
      break;
    }
    default: return NULL;
    }
  }
  return Rf_mkCharLenCE(r->scratch, (int)(o - r->scratch), CE_UTF8);
}

static SEXP parse_number(reader *r, enum kind *kind) {
  const unsigned char *s = r->p, *c = s;
  if (*c == '-') c++;
  if (c >= r->end || *c < '0' || *c > '9') return bail(r);
  if (*c == '0') {
    c++;
  } else {
    while (c < r->end && *c >= '0' && *c <= '9') c++;
  }
  int digits = (int)(c - s) - (*s == '-');
  int is_float = 0;
  if (c < r->end && *c == '.') {
    is_float = 1;
    const unsigned char *f = ++c;
    while (c < r->end && *c >= '0' && *c <= '9') c++;
    if (c == f) return bail(r);
  }
  if (c < r->end && (*c == 'e' || *c == 'E')) {
    is_float = 1;
    c++;
    if (c < r->end && (*c == '+' || *c == '-')) c++;
    const unsigned char *f = c;
    while (c < r->end && *c >= '0' && *c <= '9') c++;
    if (c == f) return bail(r);
  }
  char token[64];
  size_t len = (size_t)(c - s);
  if (len >= sizeof(token)) return bail(r);
  memcpy(token, s, len);
  token[len] = 0;
  r->p = c;
  if (!is_float && digits <= 10) {
    long v = strtol(token, NULL, 10);
    /* R's integers (INT_MIN is R's NA); past them, a double. */
    if (v <= INT_MAX && v > INT_MIN) {
      *kind = K_INT;
      return Rf_ScalarInteger((int)v);
    }
  }
  if (!is_float && digits > 15) return bail(r); /* past a double's exact integers */
  /* strtod rounds to the nearest double, as jsonlite's parser does; past the largest
   * double, jsonlite's call. */
  double v = strtod(token, NULL);
  if (!isfinite(v)) return bail(r);
  *kind = K_DBL;
  return Rf_ScalarReal(v);
}

static int literal(reader *r, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) return 0;
  r->p += n;
  return 1;
}

/* The strings jsonlite reads as values in an array of scalars with no other string. */
static int na_string_value(SEXP s, SEXP *value) {
  const char *c = CHAR(s);
  if (!strcmp(c, "NA")) *value = Rf_ScalarLogical(NA_LOGICAL);
  else if (!strcmp(c, "NaN")) *value = Rf_ScalarReal(R_NaN);
  else if (!strcmp(c, "Inf")) *value = Rf_ScalarReal(R_PosInf);
  else if (!strcmp(c, "-Inf")) *value = Rf_ScalarReal(R_NegInf);
  else return 0;
  return 1;
}

/* The elements (a list of n scalars, NULL for null) of an array of scalars, as jsonlite
 * gives it (unlist()): an atomic vector of the widest type, null as NA. */
static SEXP atomic_array(SEXP items, R_xlen_t n) {
  enum kind widest = K_NULL;
  int strings = 0, na_strings = 0;
  for (R_xlen_t i = 0; i < n; i++) {
    SEXP x = VECTOR_ELT(items, i);
    if (x == R_NilValue) continue;
    enum kind k = TYPEOF(x) == STRSXP ? K_STR : TYPEOF(x) == REALSXP ? K_DBL
                : TYPEOF(x) == INTSXP ? K_INT : K_LGL;
    if (k == K_STR) {
      SEXP value;
      strings++;
      na_strings += na_string_value(STRING_ELT(x, 0), &value);
    }
    if (k > widest) widest = k;
  }
  if (strings && na_strings == strings) {
    /* Only "NA", "NaN", "Inf", "-Inf": those values, and the type of what is left. */
    widest = K_NULL;
    for (R_xlen_t i = 0; i < n; i++) {
      SEXP x = VECTOR_ELT(items, i), value;
      if (x != R_NilValue && TYPEOF(x) == STRSXP) {
        na_string_value(STRING_ELT(x, 0), &value);
        SET_VECTOR_ELT(items, i, x = value);
      }
      if (x == R_NilValue) continue;
      enum kind k = TYPEOF(x) == REALSXP ? K_DBL : TYPEOF(x) == INTSXP ? K_INT : K_LGL;
      if (k > widest) widest = k;
    }
  }
  SEXPTYPE type = widest == K_STR ? STRSXP : widest == K_DBL ? REALSXP
                : widest == K_INT ? INTSXP : LGLSXP;
  SEXP out = PROTECT(Rf_allocVector(type, n));
  for (R_xlen_t i = 0; i < n; i++) {
    SEXP x = VECTOR_ELT(items, i);
    int null = x == R_NilValue;
    switch (type) {
    case STRSXP:
      /* Numbers and logicals beside strings: as unlist() writes them. */
      SET_STRING_ELT(out, i, null ? NA_STRING : TYPEOF(x) == STRSXP ? STRING_ELT(x, 0)
                                   : STRING_ELT(Rf_coerceVector(x, STRSXP), 0));
      break;
    case REALSXP:
      REAL(out)[i] = null ? NA_REAL : TYPEOF(x) == REALSXP ? REAL(x)[0]
                   : TYPEOF(x) == INTSXP ? (INTEGER(x)[0] == NA_INTEGER ? NA_REAL : INTEGER(x)[0])
                   : (LOGICAL(x)[0] == NA_LOGICAL ? NA_REAL : LOGICAL(x)[0]);
      break;
    case INTSXP:
      INTEGER(out)[i] = null ? NA_INTEGER : TYPEOF(x) == INTSXP ? INTEGER(x)[0] : LOGICAL(x)[0];
      break;
    default:
      LOGICAL(out)[i] = null ? NA_LOGICAL : LOGICAL(x)[0];
    }
  }
  UNPROTECT(1);
  return out;
}

/* jsonlite gives an empty array beside atomic vectors (and nothing else) their type. */
static void type_empty_arrays(SEXP items, R_xlen_t n) {
  SEXPTYPE type = NILSXP;
  for (R_xlen_t i = 0; i < n; i++) {
    SEXP x = VECTOR_ELT(items, i);
    SEXPTYPE t = TYPEOF(x);
    if (t == VECSXP && !XLENGTH(x) && Rf_getAttrib(x, R_NamesSymbol) == R_NilValue) continue;
    if (t != LGLSXP && t != INTSXP && t != REALSXP && t != STRSXP) return;
    if (type == NILSXP) type = t;
  }
  for (R_xlen_t i = 0; i < n; i++) {
    SEXP x = VECTOR_ELT(items, i);
    if (TYPEOF(x) == VECSXP) SET_VECTOR_ELT(items, i, Rf_allocVector(type, 0));
  }
}

/* An array or object (r->p at its opening bracket). */
static SEXP parse_container(reader *r, enum kind *kind, int object) {
  if (++r->depth > MAX_DEPTH) return bail(r);
  r->p++;
  R_xlen_t n = 0, cap = 8;
  PROTECT_INDEX items_at, keys_at;
  SEXP items = R_NilValue, keys = R_NilValue;
  PROTECT_WITH_INDEX(items = Rf_allocVector(VECSXP, cap), &items_at);
  PROTECT_WITH_INDEX(keys = object ? Rf_allocVector(STRSXP, cap) : R_NilValue, &keys_at);
  int all_scalars = 1, any_empty_array = 0, all_empty_arrays = 1;
  skip_ws(r);
  char close = object ? '}' : ']';
  if (r->p < r->end && *r->p == close) {
    r->p++;
  } else {
    for (;;) {
      if (n == cap) {
        cap *= 2;
        REPROTECT(items = Rf_xlengthgets(items, cap), items_at);
        if (object) REPROTECT(keys = Rf_xlengthgets(keys, cap), keys_at);
      }
      if (object) {
        skip_ws(r);
        if (r->p >= r->end || *r->p != '"') goto fail;
        SEXP key = parse_string(r);
        if (key == NULL || !LENGTH(key) || !strcmp(CHAR(key), "$date")) goto fail;
        SET_STRING_ELT(keys, n, key);
        skip_ws(r);
        if (r->p >= r->end || *r->p != ':') goto fail;
        r->p++;
      }
      enum kind k = K_CONTAINER;
      SEXP item = parse_value(r, &k);
      if (r->bail) goto fail;
      SET_VECTOR_ELT(items, n++, item);
      if (k >= K_EMPTY_ARRAY) all_scalars = 0;
      if (k == K_EMPTY_ARRAY) any_empty_array = 1;
      else all_empty_arrays = 0;
      skip_ws(r);
      if (r->p < r->end && *r->p == ',') {
        r->p++;
        skip_ws(r);
        continue;
      }
      if (r->p < r->end && *r->p == close) {
        r->p++;
        break;
      }
      goto fail;
    }
  }
  r->depth--;
  SEXP out;
  if (object) {
    out = PROTECT(Rf_xlengthgets(items, n));
    Rf_setAttrib(out, R_NamesSymbol, PROTECT(Rf_xlengthgets(keys, n)));
    UNPROTECT(4);
    *kind = K_CONTAINER;
    return out;
  }
  *kind = n ? K_CONTAINER : K_EMPTY_ARRAY;
  if (n && all_scalars) {
    out = atomic_array(items, n);
    UNPROTECT(2);
    return out;
  }
  if (any_empty_array && !all_empty_arrays) type_empty_arrays(items, n);
  out = Rf_xlengthgets(items, n);
  UNPROTECT(2);
  return out;
fail:
  UNPROTECT(2);
  return bail(r);
}

static SEXP parse_value(reader *r, enum kind *kind) {
  skip_ws(r);
  if (r->p >= r->end) return bail(r);
  switch (*r->p) {
  case '{': return parse_container(r, kind, 1);
  case '[': return parse_container(r, kind, 0);
  case '"': {
    SEXP s = parse_string(r);
    if (s == NULL) return bail(r);
    *kind = K_STR;
    return Rf_ScalarString(s);
  }
  case 't':
    if (!literal(r, "true")) return bail(r);
    *kind = K_LGL;
    return Rf_ScalarLogical(1);
  case 'f':
    if (!literal(r, "false")) return bail(r);
    *kind = K_LGL;
    return Rf_ScalarLogical(0);
  case 'n':
    if (!literal(r, "null")) return bail(r);
    *kind = K_NULL;
    return R_NilValue;
  default: return parse_number(r, kind);
  }
}

/* rl_json_read(text): list(value), or NULL when jsonlite must decide. `text`: a string
 * (its bytes, read as UTF-8) or a raw vector. */
SEXP rl_json_read(SEXP text) {
  reader r = {0};
  if (TYPEOF(text) == RAWSXP) {
    r.p = RAW(text);
    r.end = r.p + XLENGTH(text);
  } else if (TYPEOF(text) == STRSXP && XLENGTH(text) == 1 && STRING_ELT(text, 0) != NA_STRING) {
    SEXP s = STRING_ELT(text, 0);
    cetype_t ce = Rf_getCharCE(s);
    if (ce == CE_LATIN1 || ce == CE_BYTES) return R_NilValue;
    r.p = (const unsigned char *)CHAR(s);
    r.end = r.p + LENGTH(s);
  } else {
    return R_NilValue;
  }
  enum kind kind = K_CONTAINER;
  SEXP value = PROTECT(parse_value(&r, &kind));
  skip_ws(&r);
  if (r.bail || r.p != r.end) {
    UNPROTECT(1);
    return R_NilValue;
  }
  SEXP out = Rf_allocVector(VECSXP, 1);
  SET_VECTOR_ELT(out, 0, value);
  UNPROTECT(1);
  return out;
}
