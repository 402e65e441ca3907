/* isolate_msg.c — packets and desc serialisation shared by the isolating
 * proxy and the device host (format in isolate_msg.h). */
#include "backend/isolate_msg.h"

#include "core/sock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int emx__iso_send(int sock, uint32_t op, uint32_t id, int32_t status,
                  uint64_t arg, const void *payload, size_t len, int fd) {
  if (sizeof(emx__iso_hdr) + len > EMX__ISO_MSG_MAX)
    return -EMSGSIZE;
  emx__iso_hdr hdr = {
      .op = op, .id = id, .status = status, .len = (uint32_t)len, .arg = arg};
  struct iovec iov[2] = {{&hdr, sizeof hdr}, {(void *)payload, len}};
  /* MSG_NOSIGNAL (always set there): a dead peer must be an error code,
   * not a SIGPIPE that kills the engine process. */
  ssize_t n = emx__sock_sendv(sock, iov, len ? 2 : 1, fd, 0);
  return n < 0 ? (int)n : 0;
}

ssize_t emx__iso_recv(int sock, void *buf, emx__iso_hdr *hdr, int *fd) {
  int fds[EMX__SOCK_MAX_FDS], nfds = 0;
  *fd = -1;
  /* Truncated data or control (MSG_TRUNC/MSG_CTRUNC) come back as
   * -EMSGSIZE/-EPROTO with every received fd already closed. */
  ssize_t n = emx__sock_recv(sock, buf, EMX__ISO_MSG_MAX, fds, &nfds, 0);
  if (n == -EMSGSIZE)
    n = -EPROTO;
  if (n <= 0)
    return n;
  for (int i = 1; i < nfds; i++)
    close(fds[i]); /* one fd per packet; extras are dropped */
  if (nfds > 0)
    *fd = fds[0];
  if ((size_t)n < sizeof *hdr)
    goto bad;
  memcpy(hdr, buf, sizeof *hdr);
  if ((size_t)n != sizeof *hdr + hdr->len)
    goto bad;
  return n;
bad:
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
  return -EPROTO;
}

/* ---- desc serialisation ---------------------------------------------------
 * u32 input_count, u32 output_count, then per tensor: i32 dtype, i32 rank,
 * i32 dims[EMX_MAX_DIMS], u64 bytes, f32 scale, i32 zero_point, u32 name
 * length, name bytes (no terminator). Both ends are the same build on the
 * same machine, so fields are in host order. */

typedef struct cursor {
  unsigned char *p; /* next byte */
  size_t left;      /* bytes left */
  int bad;          /* overflow or underflow happened */
} cursor;

static void put(cursor *c, const void *v, size_t n) {
  if (c->bad || n > c->left) {
    c->bad = 1;
    return;
  }
  memcpy(c->p, v, n);
  c->p += n;
  c->left -= n;
}

static void get(cursor *c, void *v, size_t n) {
  if (c->bad || n > c->left) {
    c->bad = 1;
    memset(v, 0, n);
    return;
  }
  memcpy(v, c->p, n);
  c->p += n;
  c->left -= n;
}

static void put_infos(cursor *c, const emx_tensor_info *t, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int32_t dtype = (int32_t)t[i].dtype, rank = t[i].rank;
    uint64_t bytes = t[i].bytes;
    uint32_t nlen = t[i].name ? (uint32_t)strlen(t[i].name) : 0;
    put(c, &dtype, sizeof dtype);
    put(c, &rank, sizeof rank);
    put(c, t[i].dims, sizeof t[i].dims);
    put(c, &bytes, sizeof bytes);
    put(c, &t[i].scale, sizeof t[i].scale);
    put(c, &t[i].zero_point, sizeof t[i].zero_point);
    put(c, &nlen, sizeof nlen);
    put(c, t[i].name, nlen);
  }
}

size_t emx__iso_desc_encode(const emx__model_desc *desc, void *buf,
                            size_t cap) {
  cursor c = {buf, cap, 0};
  uint32_t nin = (uint32_t)desc->input_count;
  uint32_t nout = (uint32_t)desc->output_count;
  put(&c, &nin, sizeof nin);
  put(&c, &nout, sizeof nout);
  put_infos(&c, desc->inputs, desc->input_count);
  put_infos(&c, desc->outputs, desc->output_count);
  return c.bad ? 0 : cap - c.left;
}

static int get_infos(cursor *c, emx_tensor_info *t, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int32_t dtype, rank;
    uint64_t bytes;
    uint32_t nlen;
    get(c, &dtype, sizeof dtype);
    get(c, &rank, sizeof rank);
    get(c, t[i].dims, sizeof t[i].dims);
    get(c, &bytes, sizeof bytes);
    get(c, &t[i].scale, sizeof t[i].scale);
    get(c, &t[i].zero_point, sizeof t[i].zero_point);
    get(c, &nlen, sizeof nlen);
    if (c->bad || nlen > c->left || rank < 0 || rank > EMX_MAX_DIMS)
      return EMX_EPROTO;
    char *name = malloc((size_t)nlen + 1);
    if (!name)
      return EMX_ENOMEM;
    get(c, name, nlen);
    name[nlen] = '\0';
    t[i].name = name;
    t[i].dtype = (emx_dtype)dtype;
    t[i].rank = rank;
    t[i].bytes = (size_t)bytes;
  }
  return 0;
}

int emx__iso_desc_decode(const void *buf, size_t len, emx__model_desc *desc,
                         emx__errbuf *err) {
  cursor c = {(unsigned char *)buf, len, 0};
  uint32_t nin, nout;
  memset(desc, 0, sizeof *desc);
  get(&c, &nin, sizeof nin);
  get(&c, &nout, sizeof nout);
  /* Each tensor takes at least 60 bytes: a count beyond len/60 is a lie. */
  if (c.bad || nin > len / 60 || nout > len / 60)
    return emx__errf(err, EMX_EPROTO,
                     "device process sent a malformed model "
                     "description");
  desc->inputs = calloc(nin ? nin : 1, sizeof *desc->inputs);
  desc->outputs = calloc(nout ? nout : 1, sizeof *desc->outputs);
  if (!desc->inputs || !desc->outputs) {
    free(desc->inputs);
    free(desc->outputs);
    memset(desc, 0, sizeof *desc);
    return emx__errf(err, EMX_ENOMEM,
                     "out of memory reading a model "
                     "description");
  }
  desc->input_count = nin;
  desc->output_count = nout;
  int rc = get_infos(&c, desc->inputs, nin);
  if (rc == 0)
    rc = get_infos(&c, desc->outputs, nout);
  if (rc == 0 && c.left != 0)
    rc = EMX_EPROTO;
  if (rc < 0) {
    emx__model_desc_free(desc);
    return emx__errf(err, rc,
                     rc == EMX_ENOMEM
                         ? "out of memory reading a model description"
                         : "device process sent a malformed model "
                           "description");
  }
  return 0;
}

size_t emx__iso_region_need(const emx__model_desc *desc) {
  size_t n = 0;
  for (size_t i = 0; i < desc->input_count; i++)
    n += emx__iso_align(desc->inputs[i].bytes);
  for (size_t i = 0; i < desc->output_count; i++)
    n += emx__iso_align(desc->outputs[i].bytes);
  return n;
}

int emx__iso_strip(emx__devspec *spec, int *isolate, long *deadline_ms,
                   emx__errbuf *err) {
  long iso = -1;
  int rc = emx__devspec_int(spec, "isolate", 0, 1, &iso, err);
  if (rc == 0)
    rc = emx__devspec_int(spec, "deadline_ms", 1, 3600 * 1000L, deadline_ms,
                          err);
  *isolate = (int)iso;
  /* The engine's own keys (its scheduler reads them): never the
   * backend's, in this process or in the device host. */
  emx__devspec_str(spec, "sched");
  emx__devspec_str(spec, "max_delay_ms");
  return rc;
}
