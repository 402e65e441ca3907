/* request.c — tensors in the arena, and inference requests: validation,
 * INFER/BATCH, wait, poll, cancel. */
#include <stdlib.h>
#include <string.h>

#include "client/internal.h"
#include "core/abi.h"
#include "core/clock.h"

/* ---- tensors ------------------------------------------------------------- */

EMX_EXPORT int emx_client_tensor_alloc(emx_client *c, emx_dtype dtype,
                                       size_t bytes, emx_tensor *t) {
  if (!c || !t)
    return emx__fail(c, EMX_EINVAL, "client and tensor must not be NULL");
  memset(t, 0, sizeof *t);
  emx__client_enter(c, 1);
  int rc = 0;
  uint64_t off;
  if (c->arena.size == 0) {
    rc = emx__fail(c, EMX_EINVAL,
                   "this client has no tensor arena (it connected with "
                   "arena_bytes 0): connect with a non-zero "
                   "emx_client_config.arena_bytes");
  } else if (emx__alloc_get(&c->alloc, bytes, &off) < 0) {
    rc = emx__fail(c, EMX_ENOMEM,
                   "the %llu-byte tensor arena has no free block of %zu "
                   "bytes: free tensors, or connect with a larger "
                   "emx_client_config.arena_bytes",
                   (unsigned long long)c->arena.size, bytes);
  } else {
    t->dtype = dtype;
    t->data = (uint8_t *)c->arena.base + off;
    t->size = bytes;
  }
  emx__client_leave(c);
  return rc;
}

static int alloc_for(emx_client *c, const emx_client_model *m, size_t index,
                     int output, emx_tensor *t) {
  if (!c || !m || !t)
    return emx__fail(c, EMX_EINVAL,
                     "client, model and tensor must not be "
                     "NULL");
  emx_tensor_info ti;
  int rc = output ? emx_client_model_output_info(m, index, &ti)
                  : emx_client_model_input_info(m, index, &ti);
  if (rc < 0)
    return rc;
  return emx_client_tensor_alloc(c, ti.dtype, ti.bytes, t);
}

EMX_EXPORT int emx_client_tensor_alloc_input(emx_client *c,
                                             const emx_client_model *m,
                                             size_t index, emx_tensor *t) {
  return alloc_for(c, m, index, 0, t);
}

EMX_EXPORT int emx_client_tensor_alloc_output(emx_client *c,
                                              const emx_client_model *m,
                                              size_t index, emx_tensor *t) {
  return alloc_for(c, m, index, 1, t);
}

EMX_EXPORT void emx_client_tensor_free(emx_client *c, emx_tensor *t) {
  if (!c || !t || !t->data)
    return;
  emx__client_enter(c, 1);
  uintptr_t base = (uintptr_t)c->arena.base, p = (uintptr_t)t->data;
  /* A tensor from elsewhere (another client, the parent before fork) is
   * not ours to free: ignored. */
  if (base && p >= base && p - base < c->arena.size)
    emx__alloc_put(&c->alloc, (uint64_t)(p - base));
  emx__client_leave(c);
  t->data = NULL;
}

/* ---- validation ---------------------------------------------------------- */

/* check_tensors: counts, dtypes and sizes against the model (the engine's
 * codes and wording), then that each lies in the arena. Locked. */
static int check_tensors(emx_client *c, const emx_client_model *m,
                         const char *what, const emx_tensor_info *infos,
                         size_t want, const emx_tensor *given, size_t n) {
  if (n != want)
    return emx__fail(c, EMX_ECOUNT,
                     "model \"%s\" takes %zu %s tensor%s; the request gave %zu",
                     m->name, want, what, want == 1 ? "" : "s", n);
  if (n > EMX_WIRE_MAX_TENSORS)
    return emx__fail(c, EMX_ECOUNT,
                     "model \"%s\" has %zu %s tensors; the daemon protocol "
                     "carries at most %d",
                     m->name, n, what, EMX_WIRE_MAX_TENSORS);
  if (n && !given)
    return emx__fail(c, EMX_EINVAL, "model \"%s\": %s array is NULL", m->name,
                     what);
  uintptr_t base = (uintptr_t)c->arena.base;
  uintptr_t end = base + (uintptr_t)c->arena.size;
  for (size_t i = 0; i < n; i++) {
    const emx_tensor_info *t = &infos[i];
    const emx_tensor *g = &given[i];
    if (g->dtype != t->dtype)
      return emx__fail(c, EMX_EDTYPE,
                       "model \"%s\" %s %zu (\"%s\") is %s; the request gave "
                       "%s",
                       m->name, what, i, t->name, emx_dtype_name(t->dtype),
                       emx_dtype_name(g->dtype));
    if (g->size != t->bytes)
      return emx__fail(c, EMX_ESIZE,
                       "model \"%s\" %s %zu (\"%s\") is %zu bytes; the "
                       "request gave %zu",
                       m->name, what, i, t->name, t->bytes, g->size);
    if (!g->data)
      return emx__fail(c, EMX_EINVAL,
                       "model \"%s\" %s %zu (\"%s\"): data is NULL", m->name,
                       what, i, t->name);
    uintptr_t p = (uintptr_t)g->data;
    if (!base || p < base || p > end || g->size > end - p)
      return emx__fail(c, EMX_EINVAL,
                       "%s tensor %zu is not in the client arena: allocate it "
                       "with emx_client_tensor_alloc",
                       what, i);
  }
  return 0;
}

static int check_item(emx_client *c, const emx_client_batch_item *it) {
  emx_client_model *m = it->model;
  if (!m)
    return emx__fail(c, EMX_EINVAL, "request has no model");
  if (m->client != c)
    return emx__fail(c, EMX_EINVAL, "model \"%s\" belongs to another client",
                     m->name);
  int rc = check_tensors(c, m, "input", m->info, m->nin, it->inputs, it->nin);
  if (rc == 0)
    rc = check_tensors(c, m, "output", m->info + m->nin, m->nout, it->outputs,
                       it->nout);
  return rc;
}

/* ---- submission ---------------------------------------------------------- */

static size_t item_bytes(const emx_client_batch_item *it) {
  return sizeof(emx__wire_infer) + (it->nin + it->nout) * sizeof(emx__wire_ref);
}

static void put_infer(emx_client *c, emx__wire_buf *b,
                      const emx_client_batch_item *it,
                      const emx_client_options *opts) {
  emx__wire_infer in = {.model = it->model->id,
                        .priority = (uint8_t)opts->priority,
                        .nin = (uint8_t)it->nin,
                        .nout = (uint8_t)it->nout,
                        .timeout_ns = opts->timeout_ns};
  emx__wire_put(b, &in, sizeof in);
  const uint8_t *base = c->arena.base;
  for (size_t i = 0; i < it->nin + it->nout; i++) {
    const emx_tensor *t =
        i < it->nin ? &it->inputs[i] : &it->outputs[i - it->nin];
    emx__wire_ref r = {.offset = (uint64_t)((const uint8_t *)t->data - base),
                       .length = t->size,
                       .dtype = (uint32_t)t->dtype};
    emx__wire_put(b, &r, sizeof r);
  }
}

static int slots_free(emx_client *c, void *arg) {
  size_t n = *(const size_t *)arg;
  return c->max_inflight == 0 || c->inflight + n <= c->max_inflight;
}

/* submit_locked validates, sends n requests (one INFER, or one BATCH when
 * batch is set) and fills reqs[]. All or nothing. Locked. */
static int submit_locked(emx_client *c, const emx_client_batch_item *items,
                         size_t n, int batch, const emx_client_options *opts,
                         emx_client_request **reqs) {
  emx_client_options own = {.struct_size = sizeof own,
                            .priority = EMX_PRIORITY_NORMAL};
  if (opts) {
    emx__errbuf err;
    int arc = emx__abi_in(&own, sizeof own, opts, "emx_client_options", &err);
    if (arc < 0)
      return emx__fail_buf(c, arc, &err);
  }
  opts = &own;
  if (opts->priority < 0 || opts->priority >= EMX_PRIORITY_COUNT)
    return emx__fail(c, EMX_EINVAL, "priority %d is out of range [0, %d]",
                     opts->priority, EMX_PRIORITY_COUNT - 1);
  if (opts->timeout_ns < 0)
    return emx__fail(c, EMX_EINVAL, "timeout_ns must not be negative");
  size_t bytes = sizeof(emx__wire_hdr) + (batch ? sizeof(emx__wire_models) : 0);
  for (size_t i = 0; i < n; i++) {
    int rc = check_item(c, &items[i]);
    if (rc < 0)
      return rc;
    bytes += item_bytes(&items[i]) + (batch ? sizeof(emx__wire_batch_item) : 0);
  }
  if (c->broken)
    return emx__client_fail_broken(c);
  if (batch) {
    if (n > EMX_WIRE_MAX_BATCH || (c->max_batch && n > c->max_batch))
      return emx__fail(c, EMX_EINVAL,
                       "a batch of %zu requests exceeds the daemon's limit "
                       "of %u: split it",
                       n,
                       c->max_batch && c->max_batch < EMX_WIRE_MAX_BATCH
                           ? c->max_batch
                           : EMX_WIRE_MAX_BATCH);
    if (bytes > EMX_WIRE_MAX_MSG)
      return emx__fail(c, EMX_EINVAL,
                       "a batch of %zu requests needs a %zu-byte message; "
                       "one message holds at most %d bytes: split it",
                       n, bytes, EMX_WIRE_MAX_MSG);
  }
  if (c->max_inflight && n > c->max_inflight)
    return emx__fail(c, EMX_EINVAL,
                     "a batch of %zu requests exceeds the daemon's limit of "
                     "%u in flight: split it",
                     n, c->max_inflight);

  /* After fork, models opened by the parent are opened again here. */
  for (size_t i = 0; i < n; i++) {
    int rc = emx__client_reopen(c, items[i].model);
    if (rc < 0)
      return rc;
  }
  /* At most max_inflight: wait, reading replies, until slots free. */
  int rc = emx__client_wait(c, slots_free, &n, -1);
  if (rc < 0)
    return emx__client_fail_broken(c);

  uint64_t small[256]; /* one INFER: at most 16 + 16 + 64 * 24 bytes */
  void *pkt = batch ? malloc(EMX_WIRE_MAX_MSG) : small;
  if (!pkt)
    return emx__fail(c, EMX_ENOMEM, "out of memory building a batch");
  size_t made = 0;
  for (; made < n; made++) {
    reqs[made] = calloc(1, sizeof *reqs[made]);
    if (!reqs[made])
      break;
  }
  if (made < n) {
    for (size_t i = 0; i < made; i++)
      free(reqs[i]);
    if (batch)
      free(pkt);
    return emx__fail(c, EMX_ENOMEM, "out of memory submitting requests");
  }
  int64_t now = emx_now_ns();
  emx__wire_buf b;
  for (size_t i = 0; i < n; i++) {
    emx_client_request *r = reqs[i];
    r->client = c;
    r->submitted_ns = now;
    r->timings.submitted_ns = now;
    r->timings.device = -1;
    r->p.req = r;
    emx__client_register(c, &r->p, EMX_WIRE_COMPLETE);
    c->inflight++;
    c->refs++;
  }
  /* A lone request times its model's round trip, and may wait by it
   * (pace.c). */
  if (n == 1 && c->inflight == 1)
    reqs[0]->pace = &items[0].model->pace;
  if (!batch) {
    emx__wire_begin(&b, pkt, EMX_WIRE_INFER, reqs[0]->p.id);
    put_infer(c, &b, &items[0], opts);
  } else {
    emx__wire_begin(&b, pkt, EMX_WIRE_BATCH, 0);
    emx__wire_models hdr = {.count = (uint32_t)n};
    emx__wire_put(&b, &hdr, sizeof hdr);
    for (size_t i = 0; i < n; i++) {
      emx__wire_batch_item bi = {
          .id = reqs[i]->p.id,
          .size = (uint32_t)(sizeof bi + item_bytes(&items[i]))};
      emx__wire_put(&b, &bi, sizeof bi);
      put_infer(c, &b, &items[i], opts);
    }
  }
  size_t len = emx__wire_end(&b); /* sizes were checked: never overflows */
  rc = emx__client_send(c, pkt, len);
  if (batch)
    free(pkt);
  if (rc < 0) {
    /* The breakage completed them (done, out of the map): just free. */
    for (size_t i = 0; i < n; i++) {
      emx__client_unregister(c, &reqs[i]->p);
      emx__client_free_request(reqs[i]);
      reqs[i] = NULL;
      c->refs--;
    }
    return emx__client_fail_broken(c);
  }
  return 0;
}

EMX_EXPORT int emx_client_submit(emx_client *c, emx_client_model *m,
                                 const emx_tensor *inputs, size_t nin,
                                 const emx_tensor *outputs, size_t nout,
                                 const emx_client_options *opts,
                                 emx_client_request **out) {
  if (!c || !out)
    return emx__fail(c, EMX_EINVAL, "client and out must not be NULL");
  *out = NULL;
  emx_client_batch_item it = {m, inputs, nin, outputs, nout};
  emx__client_enter(c, 1);
  int rc = submit_locked(c, &it, 1, 0, opts, out);
  emx__client_leave(c);
  return rc;
}

EMX_EXPORT int emx_client_submit_batch(emx_client *c,
                                       const emx_client_batch_item *items,
                                       size_t n, const emx_client_options *opts,
                                       emx_client_request **out) {
  if (!c || !out || !items || n == 0)
    return emx__fail(c, EMX_EINVAL,
                     "client, items and out must not be NULL, n not 0");
  for (size_t i = 0; i < n; i++)
    out[i] = NULL;
  emx__client_enter(c, 1);
  int rc = submit_locked(c, items, n, 1, opts, out);
  emx__client_leave(c);
  return rc;
}

static int request_done(emx_client *c, void *arg) {
  (void)c;
  return ((emx_client_request *)arg)->p.done;
}

EMX_EXPORT void(emx_client_options_init)(emx_client_options *opts) {
  emx_client_options own = {.struct_size = sizeof own,
                            .priority = EMX_PRIORITY_NORMAL};
  emx__abi_init(opts, &own, sizeof own);
}

EMX_EXPORT int(emx_client_infer)(emx_client *c, emx_client_model *m,
                                 const emx_tensor *inputs, size_t nin,
                                 const emx_tensor *outputs, size_t nout,
                                 emx_timings *timings) {
  if (!c)
    return emx__fail(c, EMX_EINVAL, "client must not be NULL");
  emx_client_batch_item it = {m, inputs, nin, outputs, nout};
  emx_client_request *r;
  emx__client_enter(c, 1);
  int rc = submit_locked(c, &it, 1, 0, NULL, &r);
  if (rc < 0) {
    emx__client_leave(c);
    return rc;
  }
  emx__client_pace_wait(c, r);
  emx__client_wait(c, request_done, r, -1); /* done, or broken: done too */
  rc = r->p.status;
  if (rc < 0)
    emx__fail(c, rc, "%s", r->msg ? r->msg : emx_strerror(rc));
  if (timings) {
    emx__errbuf err;
    if (emx__abi_out(timings, &r->timings, sizeof r->timings, "emx_timings",
                     &err) < 0)
      emx__fail_buf(c, EMX_EINVAL, &err); /* the request ran: keep rc */
  }
  emx__client_free_request(r);
  emx__client_release(c); /* r's reference; the owner's keeps c */
  return rc;
}

/* ---- request handles ----------------------------------------------------- */

EMX_EXPORT int emx_client_request_wait(emx_client_request *r,
                                       int64_t timeout_ns) {
  if (!r)
    return EMX_EINVAL;
  emx_client *c = r->client;
  emx__client_enter(c, 1);
  int64_t deadline =
      timeout_ns < 0 ? -1 : emx__deadline_after(emx_now_ns(), timeout_ns);
  if (timeout_ns < 0)
    emx__client_pace_wait(c, r);
  int rc = emx__client_wait(c, request_done, r, deadline);
  if (r->p.done)
    rc = r->p.status;
  else if (rc != EMX_EAGAIN)
    rc = EMX_EAGAIN; /* unreachable: a broken connection completes all */
  if (rc < 0 && rc != EMX_EAGAIN)
    emx__fail(c, rc, "%s", r->msg ? r->msg : emx_strerror(rc));
  emx__client_leave(c);
  return rc;
}

EMX_EXPORT int emx_client_request_poll(emx_client_request *r) {
  return emx_client_request_wait(r, 0);
}

EMX_EXPORT int emx_client_request_cancel(emx_client_request *r) {
  if (!r)
    return EMX_EINVAL;
  emx_client *c = r->client;
  emx__client_enter(c, 1);
  int rc;
  if (r->p.done) {
    rc = EMX_EALREADY;
  } else {
    uint64_t storage[4];
    emx__wire_buf b;
    emx__wire_begin(&b, storage, EMX_WIRE_CANCEL, r->p.id);
    size_t len = emx__wire_end(&b);
    rc = emx__client_send(c, storage, len); /* no reply of its own */
    if (rc < 0)
      emx__client_fail_broken(c);
  }
  emx__client_leave(c);
  return rc;
}

EMX_EXPORT void(emx_client_request_timings)(const emx_client_request *r,
                                            emx_timings *out) {
  if (!r || !out)
    return;
  emx_client *c = r->client;
  emx__client_enter(c, 1);
  emx_timings t = r->timings;
  emx__client_leave(c);
  emx__abi_out(out, &t, sizeof t, "emx_timings", NULL);
}

EMX_EXPORT const char *emx_client_request_error(const emx_client_request *r) {
  if (!r)
    return "";
  emx_client *c = r->client;
  emx__client_enter(c, 1);
  const char *msg = r->msg ? r->msg : "";
  emx__client_leave(c);
  return msg;
}

EMX_EXPORT void emx_client_request_destroy(emx_client_request *r) {
  if (!r)
    return;
  emx_client *c = r->client;
  emx__client_enter(c, 1);
  if (r->p.done)
    emx__client_free_request(r);
  else
    r->abandoned = 1; /* freed by dispatch when its reply comes */
  emx__client_release(c);
}
