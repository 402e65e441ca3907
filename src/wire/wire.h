/* wire.h — edgemuxd's wire protocol, version 1 (docs/protocol.md).
 *
 * One message per SOCK_SEQPACKET packet. Both ends are on one machine, so
 * fields are native-endian fixed-width integers in naturally aligned
 * structs (static-asserted below); every variable part is 8-byte aligned.
 * emx__wire_decode validates a whole packet before anyone looks inside:
 * header, declared length == received length, per-type sizes and counts,
 * string lengths. Tensor (offset, length) pairs are checked against the
 * arena separately (emx__wire_ref_ok), by whoever knows the arena size. */
#ifndef EMX_WIRE_WIRE_H
#define EMX_WIRE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define EMX_WIRE_MAGIC 0x584d /* "MX" */
#define EMX_WIRE_VERSION 1
#define EMX_WIRE_MAX_MSG 65536  /* bytes in one packet, header included */
#define EMX_WIRE_MAX_TENSORS 32 /* inputs or outputs per request */
#define EMX_WIRE_MAX_BATCH 256  /* requests in one BATCH */
#define EMX_WIRE_MAX_NAME 255   /* model/tensor name bytes */
#define EMX_WIRE_MAX_TEXT 60000 /* error/status text bytes */

typedef enum emx__wire_type {
  EMX_WIRE_HELLO = 1,          /* c→d, carries the arena fd (SCM_RIGHTS) */
  EMX_WIRE_HELLO_OK = 2,       /* d→c */
  EMX_WIRE_ERROR = 3,          /* d→c: a request (by id) failed */
  EMX_WIRE_LIST = 4,           /* c→d */
  EMX_WIRE_MODELS = 5,         /* d→c */
  EMX_WIRE_OPEN = 6,           /* c→d: model by name */
  EMX_WIRE_MODEL = 7,          /* d→c: id and tensors */
  EMX_WIRE_INFER = 8,          /* c→d */
  EMX_WIRE_COMPLETE = 9,       /* d→c */
  EMX_WIRE_CANCEL = 10,        /* c→d: header id = request to cancel */
  EMX_WIRE_BATCH = 11,         /* c→d: several INFERs */
  EMX_WIRE_STATUS = 12,        /* c→d */
  EMX_WIRE_STATUS_OK = 13,     /* d→c: text */
  EMX_WIRE_PING = 14,          /* c→d */
  EMX_WIRE_PONG = 15,          /* d→c */
  EMX_WIRE_LOAD = 16,          /* c→d: by path; refused since LOAD_BYTES */
  EMX_WIRE_COMPLETE_MANY = 17, /* d→c: several COMPLETEs (a BATCH's) */
  EMX_WIRE_LOAD_BYTES = 18,    /* c→d: model bytes in a sealed memfd */
  EMX_WIRE_UNLOAD = 19,        /* c→d: a model this uid loaded, by name */
  EMX_WIRE_METRICS = 20,       /* c→d: Prometheus text, as STATUS_OK */
  EMX_WIRE_TYPE_MAX = 20,
} emx__wire_type;

typedef struct emx__wire_hdr {
  uint16_t magic;  /* EMX_WIRE_MAGIC */
  uint8_t version; /* EMX_WIRE_VERSION */
  uint8_t type;    /* emx__wire_type */
  uint32_t length; /* whole packet, header included */
  uint64_t id;     /* request id chosen by the client; echoed in replies */
} emx__wire_hdr;

/* HELLO flags: what the client understands besides the base protocol. */
#define EMX_WIRE_HELLO_COMPLETE_MANY 1u /* a BATCH may be answered so */
#define EMX_WIRE_HELLO_PAGED 2u /* pages LIST/STATUS: no truncation marker */

/* LIST and STATUS may carry this body (a client sends it only after a
 * reply said more follows: older daemons refuse any body). Without it:
 * page 0. */
typedef struct emx__wire_page {
  uint32_t offset; /* LIST: first name; STATUS: first line */
  uint32_t reserved;
} emx__wire_page;

typedef struct emx__wire_hello {
  uint32_t proto;      /* EMX_WIRE_VERSION */
  uint32_t flags;      /* EMX_WIRE_HELLO_* */
  uint64_t arena_size; /* bytes of the memfd passed alongside; 0 = none */
  uint32_t pid;        /* for logs */
  uint32_t reserved;
} emx__wire_hello;

typedef struct emx__wire_hello_ok {
  uint32_t proto;        /* version the daemon speaks */
  uint32_t max_inflight; /* requests in flight per connection */
  uint64_t max_arena;    /* largest arena accepted */
  uint32_t max_batch;    /* requests per BATCH */
  uint32_t session;      /* connection number, for logs */
  char server[16];       /* daemon version, NUL-padded */
} emx__wire_hello_ok;

typedef struct emx__wire_ref {
  uint64_t offset; /* in the arena */
  uint64_t length; /* bytes */
  uint32_t dtype;  /* emx_dtype */
  uint32_t reserved;
} emx__wire_ref;

typedef struct emx__wire_infer {
  uint32_t model;     /* id from MODEL */
  uint8_t priority;   /* EMX_PRIORITY_* */
  uint8_t nin, nout;  /* refs that follow: nin inputs, then nout outputs */
  uint8_t flags;      /* 0 */
  int64_t timeout_ns; /* not started within this → EMX_ETIMEDOUT; 0 none */
} emx__wire_infer;

typedef struct emx__wire_batch_item {
  uint64_t id;   /* request id */
  uint32_t size; /* bytes of this item: this struct + infer + refs */
  uint32_t reserved;
} emx__wire_batch_item;

typedef struct emx__wire_complete {
  int32_t status;    /* 0 or EMX_E* */
  int32_t device;    /* index of the device that ran it, -1 none */
  int64_t queue_ns;  /* accepted → started */
  int64_t device_ns; /* in the backend */
  int64_t total_ns;  /* accepted → finished */
  uint32_t msg_len;  /* error text that follows */
  uint32_t batch;    /* requests that shared its invoke (0 from daemons
                        before dynamic batching: read as 1 if it ran) */
} emx__wire_complete;

/* COMPLETE_MANY: this, then `count` records, each an emx__wire_many_rec
 * and its message text padded to 8. */
typedef struct emx__wire_many {
  uint32_t count;
  uint32_t reserved;
} emx__wire_many;

typedef struct emx__wire_many_rec {
  uint64_t id;          /* the request */
  emx__wire_complete c; /* as in COMPLETE */
} emx__wire_many_rec;

typedef struct emx__wire_error {
  int32_t status;   /* EMX_E* */
  uint32_t msg_len; /* text that follows */
} emx__wire_error;

typedef struct emx__wire_name {
  uint32_t len; /* name bytes that follow (no NUL) */
  uint32_t reserved;
} emx__wire_name;

typedef struct emx__wire_model {
  uint32_t model;     /* id for INFER */
  uint16_t nin, nout; /* tensors that follow */
} emx__wire_model;

typedef struct emx__wire_tensor {
  uint32_t name_len; /* name bytes after the struct, padded to 8 */
  uint32_t dtype;
  int32_t rank;
  int32_t zero_point;
  float scale;
  uint32_t reserved;
  uint64_t bytes;
  int32_t dims[8];
} emx__wire_tensor;

/* LOAD_BYTES: this, then the name; the packet carries one memfd (SCM_RIGHTS)
 * of exactly `size` bytes, sealed F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE so
 * the bytes cannot change after the daemon has checked them. */
typedef struct emx__wire_load_bytes {
  uint64_t size;  /* the model's bytes */
  uint32_t flags; /* EMX_WIRE_LOAD_* */
  uint32_t reserved;
} emx__wire_load_bytes;

/* LOAD_BYTES flag: a placement (emx_model_config.devices, at most
 * EMX_WIRE_MAX_PLACEMENT bytes) follows the name, encoded as a name is. */
#define EMX_WIRE_LOAD_PLACED 1u
#define EMX_WIRE_MAX_PLACEMENT 127

typedef struct emx__wire_models {
  uint32_t count; /* names that follow, each an emx__wire_name + bytes
                     padded to 8 */
  uint32_t next;  /* index of the first name not sent (ask LIST with an
                     emx__wire_page at it); 0: the list is complete */
} emx__wire_models;

_Static_assert(sizeof(emx__wire_hdr) == 16, "wire layout");
_Static_assert(sizeof(emx__wire_hello) == 24, "wire layout");
_Static_assert(sizeof(emx__wire_hello_ok) == 40, "wire layout");
_Static_assert(sizeof(emx__wire_ref) == 24, "wire layout");
_Static_assert(sizeof(emx__wire_infer) == 16, "wire layout");
_Static_assert(sizeof(emx__wire_batch_item) == 16, "wire layout");
_Static_assert(sizeof(emx__wire_complete) == 40, "wire layout");
_Static_assert(sizeof(emx__wire_error) == 8, "wire layout");
_Static_assert(sizeof(emx__wire_many) == 8, "wire layout");
_Static_assert(sizeof(emx__wire_many_rec) == 48, "wire layout");
_Static_assert(sizeof(emx__wire_name) == 8, "wire layout");
_Static_assert(sizeof(emx__wire_model) == 8, "wire layout");
_Static_assert(sizeof(emx__wire_tensor) == 64, "wire layout");
_Static_assert(sizeof(emx__wire_load_bytes) == 16, "wire layout");
_Static_assert(sizeof(emx__wire_page) == 8, "wire layout");

#define EMX_WIRE_PAD8(n) (((n) + 7u) & ~(size_t)7u)

/* emx__wire_req is one decoded INFER (alone or inside a BATCH). Pointers
 * point into the packet. */
typedef struct emx__wire_req {
  uint64_t id;
  const emx__wire_infer *infer;
  const emx__wire_ref *refs; /* nin + nout entries */
} emx__wire_req;

/* emx__wire_msg is a validated packet. Pointers point into the buffer that
 * was decoded; they are 8-byte aligned when that buffer is. */
typedef struct emx__wire_msg {
  emx__wire_hdr hdr;
  union {
    const emx__wire_hello *hello;
    const emx__wire_hello_ok *hello_ok;
    struct {
      const emx__wire_error *e;
      const char *text;
    } error;
    struct {
      const char *name;
      size_t len;
    } name; /* OPEN, UNLOAD */
    struct {
      const emx__wire_load_bytes *l;
      const char *name;
      size_t name_len;
      const char *placement; /* NULL: anywhere */
      size_t placement_len;
    } load_bytes; /* LOAD_BYTES */
    struct {
      const char *name;
      size_t name_len; /* LOAD */
      const char *path;
      size_t path_len;
    } load;
    emx__wire_req infer; /* INFER */
    struct {
      uint32_t count;
      const uint8_t *items;
      size_t bytes;
    } batch;
    struct {
      const emx__wire_complete *c;
      const char *text;
    } complete;
    struct {
      uint32_t count;
      const uint8_t *recs;
      size_t bytes;
    } many; /* COMPLETE_MANY */
    struct {
      const char *text;
      size_t len;
    } text; /* STATUS_OK */
    struct {
      const emx__wire_model *m;
      const uint8_t *tensors;
      size_t bytes;
    } model;
    struct {
      uint32_t count;
      uint32_t next; /* 0: complete */
      const uint8_t *names;
      size_t bytes;
    } models;
    uint32_t page; /* LIST, STATUS: first name / line asked (0: none) */
  } u;
} emx__wire_msg;

/* emx__wire_decode validates buf[0..len) and fills msg. EMX_EPROTO with a
 * reason on anything malformed. Never reads outside the buffer. */
int emx__wire_decode(const void *buf, size_t len, emx__wire_msg *msg,
                     emx__errbuf *err);

/* emx__wire_batch_next walks a decoded BATCH: *cursor starts at 0. Returns
 * 1 with *req filled, 0 at the end (items were validated by decode). */
int emx__wire_batch_next(const emx__wire_msg *msg, size_t *cursor,
                         emx__wire_req *req);

/* emx__wire_many_next walks a decoded COMPLETE_MANY like
 * emx__wire_batch_next: 1 with the record and its text, 0 at the end. */
int emx__wire_many_next(const emx__wire_msg *msg, size_t *cursor,
                        const emx__wire_many_rec **rec, const char **text);

/* emx__wire_ref_ok: does the ref lie inside an arena of `size` bytes? */
static inline int emx__wire_ref_ok(const emx__wire_ref *r, uint64_t size) {
  return r->offset <= size && r->length <= size - r->offset;
}

/* ---- building messages ----------------------------------------------------
 */

/* emx__wire_buf accumulates one outgoing packet. */
typedef struct emx__wire_buf {
  uint8_t *data; /* caller-provided, at least EMX_WIRE_MAX_MSG bytes */
  size_t len;    /* bytes used */
  int overflow;  /* a put did not fit; the packet must not be sent */
} emx__wire_buf;

/* emx__wire_begin starts a packet of `type` with request id `id`. */
void emx__wire_begin(emx__wire_buf *b, void *storage, uint8_t type,
                     uint64_t id);

/* emx__wire_put appends n bytes (NULL: zeros), then pads to 8. Returns a
 * pointer to the appended bytes, or NULL on overflow. */
void *emx__wire_put(emx__wire_buf *b, const void *src, size_t n);

/* emx__wire_end writes the final length; returns it, or 0 on overflow. */
size_t emx__wire_end(emx__wire_buf *b);

#endif
