/* wire.c — decode (validate) and build protocol packets. See wire.h. */
#include "wire/wire.h"

#include <string.h>

#include "edgemux/edgemux.h"

/* cursor over a packet body: every take is bounds-checked. */
typedef struct cur {
  const uint8_t *p;
  size_t left;
} cur;

static const void *take(cur *c, size_t n) {
  if (n > c->left)
    return NULL;
  const void *at = c->p;
  c->p += n;
  c->left -= n;
  return at;
}

/* take_padded: n bytes, then skip padding to 8 (the padding must be
 * there, too). */
static const void *take_padded(cur *c, size_t n) {
  size_t padded = EMX_WIRE_PAD8(n);
  if (padded < n) /* wrapped */
    return NULL;
  const void *at = take(c, padded);
  return at;
}

#define PROTO(...) emx__errf(err, EMX_EPROTO, __VA_ARGS__)

static int decode_name(cur *c, const char **name, size_t *len, size_t max,
                       const char *what, emx__errbuf *err) {
  const emx__wire_name *n = take(c, sizeof *n);
  if (!n)
    return PROTO("%s: truncated length", what);
  if (n->len == 0 || n->len > max)
    return PROTO("%s: length %u out of range [1, %zu]", what, n->len, max);
  const char *s = take_padded(c, n->len);
  if (!s)
    return PROTO("%s: %u bytes declared, fewer sent", what, n->len);
  if (memchr(s, '\0', n->len))
    return PROTO("%s: contains a NUL byte", what);
  *name = s;
  *len = n->len;
  return 0;
}

/* decode_req validates one INFER body of exactly `size` bytes. */
static int decode_req(cur *c, size_t size, emx__wire_req *req,
                      emx__errbuf *err) {
  if (size < sizeof(emx__wire_infer))
    return PROTO("infer: %zu bytes is too short", size);
  const emx__wire_infer *in = take(c, sizeof *in);
  if (!in)
    return PROTO("infer: truncated");
  if (in->nin > EMX_WIRE_MAX_TENSORS || in->nout > EMX_WIRE_MAX_TENSORS)
    return PROTO("infer: %u inputs / %u outputs exceeds %d", in->nin, in->nout,
                 EMX_WIRE_MAX_TENSORS);
  if (in->priority >= EMX_PRIORITY_COUNT)
    return PROTO("infer: priority %u out of range", in->priority);
  if (in->timeout_ns < 0)
    return PROTO("infer: negative timeout");
  size_t nrefs = (size_t)in->nin + in->nout;
  if (size != sizeof *in + nrefs * sizeof(emx__wire_ref))
    return PROTO("infer: %zu bytes does not match %zu tensor refs", size,
                 nrefs);
  const emx__wire_ref *refs = take(c, nrefs * sizeof *refs);
  if (!refs)
    return PROTO("infer: truncated tensor refs");
  req->infer = in;
  req->refs = refs;
  return 0;
}

static int decode_text(cur *c, uint32_t len, const char **text,
                       emx__errbuf *err) {
  if (len > EMX_WIRE_MAX_TEXT)
    return PROTO("text of %u bytes exceeds %d", len, EMX_WIRE_MAX_TEXT);
  *text = take_padded(c, len);
  if (!*text)
    return PROTO("text: %u bytes declared, fewer sent", len);
  return 0;
}

static int decode_body(cur *c, emx__wire_msg *m, emx__errbuf *err) {
  int rc = 0;
  switch (m->hdr.type) {
  case EMX_WIRE_HELLO:
    if (!(m->u.hello = take(c, sizeof *m->u.hello)))
      return PROTO("hello: truncated");
    break;
  case EMX_WIRE_HELLO_OK:
    if (!(m->u.hello_ok = take(c, sizeof *m->u.hello_ok)))
      return PROTO("hello_ok: truncated");
    break;
  case EMX_WIRE_ERROR:
    if (!(m->u.error.e = take(c, sizeof *m->u.error.e)))
      return PROTO("error: truncated");
    rc = decode_text(c, m->u.error.e->msg_len, &m->u.error.text, err);
    break;
  case EMX_WIRE_LIST:
  case EMX_WIRE_STATUS:
    if (c->left) {
      const emx__wire_page *pg = take(c, sizeof *pg);
      if (!pg)
        return PROTO("page: truncated");
      m->u.page = pg->offset;
    }
    break;
  case EMX_WIRE_METRICS:
  case EMX_WIRE_PING:
  case EMX_WIRE_PONG:
  case EMX_WIRE_CANCEL:
    break;
  case EMX_WIRE_LOAD_BYTES:
    if (!(m->u.load_bytes.l = take(c, sizeof *m->u.load_bytes.l)))
      return PROTO("load_bytes: truncated");
    rc = decode_name(c, &m->u.load_bytes.name, &m->u.load_bytes.name_len,
                     EMX_WIRE_MAX_NAME, "model name", err);
    m->u.load_bytes.placement = NULL;
    m->u.load_bytes.placement_len = 0;
    if (rc == 0 && (m->u.load_bytes.l->flags & EMX_WIRE_LOAD_PLACED))
      rc = decode_name(c, &m->u.load_bytes.placement,
                       &m->u.load_bytes.placement_len, EMX_WIRE_MAX_PLACEMENT,
                       "placement", err);
    break;
  case EMX_WIRE_OPEN:
  case EMX_WIRE_UNLOAD:
    rc = decode_name(c, &m->u.name.name, &m->u.name.len, EMX_WIRE_MAX_NAME,
                     "model name", err);
    break;
  case EMX_WIRE_LOAD:
    rc = decode_name(c, &m->u.load.name, &m->u.load.name_len, EMX_WIRE_MAX_NAME,
                     "model name", err);
    if (rc == 0)
      rc = decode_name(c, &m->u.load.path, &m->u.load.path_len, 4096,
                       "model path", err);
    break;
  case EMX_WIRE_INFER:
    m->u.infer.id = m->hdr.id;
    rc = decode_req(c, c->left, &m->u.infer, err);
    break;
  case EMX_WIRE_BATCH: {
    const emx__wire_models *b = take(c, sizeof *b); /* same shape: count */
    if (!b)
      return PROTO("batch: truncated");
    if (b->count == 0 || b->count > EMX_WIRE_MAX_BATCH)
      return PROTO("batch: %u requests out of range [1, %d]", b->count,
                   EMX_WIRE_MAX_BATCH);
    m->u.batch.count = b->count;
    m->u.batch.items = c->p;
    m->u.batch.bytes = c->left;
    for (uint32_t i = 0; i < b->count; i++) {
      const emx__wire_batch_item *it = take(c, sizeof *it);
      if (!it)
        return PROTO("batch: item %u truncated", i);
      if (it->size < sizeof *it || it->size - sizeof *it > c->left)
        return PROTO("batch: item %u size %u out of range", i, it->size);
      emx__wire_req req;
      rc = decode_req(c, it->size - sizeof *it, &req, err);
      if (rc < 0)
        return rc;
    }
    break;
  }
  case EMX_WIRE_COMPLETE:
    if (!(m->u.complete.c = take(c, sizeof *m->u.complete.c)))
      return PROTO("complete: truncated");
    rc = decode_text(c, m->u.complete.c->msg_len, &m->u.complete.text, err);
    break;
  case EMX_WIRE_COMPLETE_MANY: {
    const emx__wire_many *h = take(c, sizeof *h);
    if (!h)
      return PROTO("complete_many: truncated");
    if (h->count == 0 || h->count > EMX_WIRE_MAX_BATCH)
      return PROTO("complete_many: %u records out of range [1, %d]", h->count,
                   EMX_WIRE_MAX_BATCH);
    m->u.many.count = h->count;
    m->u.many.recs = c->p;
    m->u.many.bytes = c->left;
    for (uint32_t i = 0; i < h->count; i++) {
      const emx__wire_many_rec *r = take(c, sizeof *r);
      const char *text;
      if (!r)
        return PROTO("complete_many: record %u truncated", i);
      rc = decode_text(c, r->c.msg_len, &text, err);
      if (rc < 0)
        return rc;
    }
    break;
  }
  case EMX_WIRE_STATUS_OK:
    if (c->left > EMX_WIRE_MAX_TEXT)
      return PROTO("status text too long");
    m->u.text.text = take(c, c->left);
    m->u.text.len =
        (size_t)((const uint8_t *)c->p - (const uint8_t *)m->u.text.text);
    break;
  case EMX_WIRE_MODEL: {
    if (!(m->u.model.m = take(c, sizeof *m->u.model.m)))
      return PROTO("model: truncated");
    size_t n = (size_t)m->u.model.m->nin + m->u.model.m->nout;
    if (m->u.model.m->nin > EMX_WIRE_MAX_TENSORS * 8 ||
        m->u.model.m->nout > EMX_WIRE_MAX_TENSORS * 8)
      return PROTO("model: too many tensors");
    m->u.model.tensors = c->p;
    m->u.model.bytes = c->left;
    for (size_t i = 0; i < n; i++) {
      const emx__wire_tensor *t = take(c, sizeof *t);
      if (!t)
        return PROTO("model: tensor %zu truncated", i);
      if (t->name_len > EMX_WIRE_MAX_NAME || t->rank < 0 || t->rank > 8)
        return PROTO("model: tensor %zu malformed", i);
      if (!take_padded(c, t->name_len))
        return PROTO("model: tensor %zu name truncated", i);
    }
    break;
  }
  case EMX_WIRE_MODELS: {
    const emx__wire_models *ms = take(c, sizeof *ms);
    if (!ms)
      return PROTO("models: truncated");
    m->u.models.count = ms->count;
    m->u.models.next = ms->next;
    m->u.models.names = c->p;
    m->u.models.bytes = c->left;
    for (uint32_t i = 0; i < ms->count; i++) {
      const char *name;
      size_t len;
      rc = decode_name(c, &name, &len, EMX_WIRE_MAX_NAME, "model name", err);
      if (rc < 0)
        return rc;
    }
    break;
  }
  default:
    return PROTO("unknown message type %u", m->hdr.type);
  }
  if (rc == 0 && c->left != 0)
    return PROTO("message type %u has %zu trailing bytes", m->hdr.type,
                 c->left);
  return rc;
}

int emx__wire_decode(const void *buf, size_t len, emx__wire_msg *msg,
                     emx__errbuf *err) {
  memset(msg, 0, sizeof *msg);
  if (len < sizeof msg->hdr)
    return PROTO("packet of %zu bytes is shorter than a header", len);
  memcpy(&msg->hdr, buf, sizeof msg->hdr);
  if (msg->hdr.magic != EMX_WIRE_MAGIC)
    return PROTO("bad magic 0x%04x", msg->hdr.magic);
  if (msg->hdr.version != EMX_WIRE_VERSION)
    return PROTO("protocol version %u; this side speaks %d", msg->hdr.version,
                 EMX_WIRE_VERSION);
  if (msg->hdr.length != len)
    return PROTO("header says %u bytes, packet has %zu", msg->hdr.length, len);
  if (len > EMX_WIRE_MAX_MSG)
    return PROTO("packet of %zu bytes exceeds %d", len, EMX_WIRE_MAX_MSG);
  cur c = {(const uint8_t *)buf + sizeof msg->hdr, len - sizeof msg->hdr};
  return decode_body(&c, msg, err);
}

int emx__wire_batch_next(const emx__wire_msg *msg, size_t *cursor,
                         emx__wire_req *req) {
  if (*cursor >= msg->u.batch.bytes)
    return 0;
  cur c = {msg->u.batch.items + *cursor, msg->u.batch.bytes - *cursor};
  const emx__wire_batch_item *it = take(&c, sizeof *it);
  emx__errbuf ignored;
  if (!it || decode_req(&c, it->size - sizeof *it, req, &ignored) < 0)
    return 0; /* unreachable after a successful decode */
  req->id = it->id;
  *cursor += it->size;
  return 1;
}

int emx__wire_many_next(const emx__wire_msg *msg, size_t *cursor,
                        const emx__wire_many_rec **rec, const char **text) {
  if (*cursor >= msg->u.many.bytes)
    return 0;
  cur c = {msg->u.many.recs + *cursor, msg->u.many.bytes - *cursor};
  emx__errbuf ignored;
  *rec = take(&c, sizeof **rec);
  if (!*rec || decode_text(&c, (*rec)->c.msg_len, text, &ignored) < 0)
    return 0; /* unreachable after a successful decode */
  *cursor = (size_t)((const uint8_t *)c.p - msg->u.many.recs);
  return 1;
}

void emx__wire_begin(emx__wire_buf *b, void *storage, uint8_t type,
                     uint64_t id) {
  b->data = storage;
  b->len = sizeof(emx__wire_hdr);
  b->overflow = 0;
  emx__wire_hdr h = {.magic = EMX_WIRE_MAGIC,
                     .version = EMX_WIRE_VERSION,
                     .type = type,
                     .id = id};
  memcpy(b->data, &h, sizeof h);
}

void *emx__wire_put(emx__wire_buf *b, const void *src, size_t n) {
  size_t padded = EMX_WIRE_PAD8(n);
  if (b->overflow || padded < n || padded > EMX_WIRE_MAX_MSG - b->len) {
    b->overflow = 1;
    return NULL;
  }
  uint8_t *at = b->data + b->len;
  if (src)
    memcpy(at, src, n);
  else
    memset(at, 0, n);
  memset(at + n, 0, padded - n);
  b->len += padded;
  return at;
}

size_t emx__wire_end(emx__wire_buf *b) {
  if (b->overflow)
    return 0;
  uint32_t len = (uint32_t)b->len;
  memcpy(b->data + offsetof(emx__wire_hdr, length), &len, sizeof len);
  return b->len;
}
