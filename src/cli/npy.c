/* npy.c — numpy's .npy files (format 1.0-3.0) for `edgemux infer`: read
 * an input checked against the tensor (type, shape, C order), write an
 * output with the tensor's type and shape. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* descr: the numpy type string of an edgemux type, little-endian (the
 * tensors are in the host's order; edgemux runs on little-endian hosts). */
static const char *descr(emx_dtype t) {
  switch (t) {
  case EMX_DTYPE_FLOAT32:
    return "<f4";
  case EMX_DTYPE_INT32:
    return "<i4";
  case EMX_DTYPE_UINT8:
    return "|u1";
  case EMX_DTYPE_INT64:
    return "<i8";
  case EMX_DTYPE_BOOL:
    return "|b1";
  case EMX_DTYPE_INT16:
    return "<i2";
  case EMX_DTYPE_INT8:
    return "|i1";
  case EMX_DTYPE_FLOAT16:
    return "<f2";
  case EMX_DTYPE_FLOAT64:
    return "<f8";
  default:
    return NULL;
  }
}

int cli_is_npy(const char *path) {
  size_t n = strlen(path);
  return n > 4 && strcmp(path + n - 4, ".npy") == 0;
}

/* field: the text after 'key': in the header dict, or NULL. */
static const char *field(const char *hdr, const char *key) {
  char pat[32];
  snprintf(pat, sizeof pat, "'%s':", key);
  const char *p = strstr(hdr, pat);
  if (!p)
    return NULL;
  p += strlen(pat);
  while (*p == ' ')
    p++;
  return p;
}

int cli_npy_read(const char *path, const emx_tensor_info *ti, void *buf,
                 size_t size) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return cli_fail("cannot open input %s: %s", path, strerror(errno));
  unsigned char pre[12];
  int ex = 0;
  char *hdr = NULL;
  if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    ex = cli_fail("%s is not a .npy file (no \\x93NUMPY magic)", path);
    goto done;
  }
  size_t hlen = pre[8] | (size_t)pre[9] << 8;
  if (pre[6] >= 2) { /* 2.0 and 3.0: a 4-byte header length */
    if (fread(pre + 10, 1, 2, f) != 2) {
      ex = cli_fail("%s: truncated .npy header", path);
      goto done;
    }
    hlen |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
  }
  if (hlen == 0 || hlen > 65536 || !(hdr = calloc(1, hlen + 1)) ||
      fread(hdr, 1, hlen, f) != hlen) {
    ex = cli_fail("%s: unreadable .npy header (%zu bytes)", path, hlen);
    goto done;
  }
  const char *want = descr(ti->dtype);
  const char *d = field(hdr, "descr");
  const char *fo = field(hdr, "fortran_order");
  const char *sh = field(hdr, "shape");
  if (!d || !fo || !sh) {
    ex = cli_fail("%s: the .npy header lacks descr, fortran_order or shape",
                  path);
    goto done;
  }
  if (!want || strncmp(d + 1, want, 3) != 0 ||
      (want[0] == '<' && d[1] == '|')) {
    ex = cli_fail("%s holds %.*s values; input \"%s\" is %s (numpy %s): "
                  "convert it with .astype()",
                  path, (int)strcspn(d, ","), d, ti->name,
                  emx_dtype_name(ti->dtype), want ? want : "none");
    goto done;
  }
  if (strncmp(fo, "False", 5) != 0) {
    ex = cli_fail("%s is in Fortran order; save a C-ordered array "
                  "(np.ascontiguousarray)",
                  path);
    goto done;
  }
  /* shape: "(1, 128, 128, 3)" or "(10,)" against the tensor's dims. */
  long dims[EMX_MAX_DIMS + 1];
  int rank = 0;
  const char *p = sh + 1;
  while (*p && *p != ')' && rank <= EMX_MAX_DIMS) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p)
      break;
    dims[rank++] = v;
    p = end;
    while (*p == ',' || *p == ' ')
      p++;
  }
  int same = rank == ti->rank;
  for (int i = 0; same && i < rank; i++)
    same = dims[i] == ti->dims[i];
  if (!same) {
    char shape[128];
    cli_format_shape(ti, shape, sizeof shape);
    ex = cli_fail("%s has shape %.*s; input \"%s\" is %s", path,
                  (int)strcspn(sh, ")") + 1, sh, ti->name, shape);
    goto done;
  }
  size_t got = fread(buf, 1, size, f);
  int extra = fgetc(f) != EOF;
  if (got != size || extra)
    ex = cli_fail("%s: %s data than its shape says (%zu bytes wanted)", path,
                  extra ? "more" : "less", size);
done:
  free(hdr);
  fclose(f);
  return ex;
}

int cli_npy_write(const char *path, const emx_tensor_info *ti, const void *data,
                  size_t size) {
  const char *d = descr(ti->dtype);
  if (!d)
    return cli_fail("output \"%s\" is %s, which .npy cannot hold; give a "
                    "raw output file",
                    ti->name, emx_dtype_name(ti->dtype));
  char shape[160] = "(";
  for (int i = 0; i < ti->rank; i++) {
    size_t n = strlen(shape);
    snprintf(shape + n, sizeof shape - n, "%d%s", ti->dims[i],
             ti->rank == 1      ? ","
             : i + 1 < ti->rank ? ", "
                                : "");
  }
  strcat(shape, ")");
  char hdr[256];
  int n = snprintf(hdr, sizeof hdr,
                   "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", d,
                   shape);
  /* Pad with spaces to a 64-byte boundary (magic and length included),
   * ending in a newline, as numpy writes it. */
  size_t total = 10 + (size_t)n + 1;
  size_t pad = (64 - total % 64) % 64;
  memset(hdr + n, ' ', pad);
  hdr[n + pad] = '\n';
  size_t hlen = (size_t)n + pad + 1;
  unsigned char pre[10] = {0x93,
                           'N',
                           'U',
                           'M',
                           'P',
                           'Y',
                           1,
                           0,
                           (unsigned char)(hlen & 0xff),
                           (unsigned char)(hlen >> 8)};
  FILE *f = fopen(path, "wb");
  if (!f)
    return cli_fail("cannot create output %s: %s", path, strerror(errno));
  int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, hlen, f) == hlen &&
           fwrite(data, 1, size, f) == size;
  if (fclose(f) != 0 || !ok)
    return cli_fail("writing %s: %s", path, strerror(errno));
  return 0;
}
