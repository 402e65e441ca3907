/* wire_decode.c — libFuzzer target over the daemon's message decoder.
 *
 * Every packet a client sends goes through emx__wire_decode before anything
 * else looks at it, so it must reject any byte string without reading out
 * of bounds; a BATCH that decodes must then walk cleanly, and every tensor
 * ref check must hold for any arena size. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* Copy into an exact-size heap buffer so ASan sees any overread, 8-byte
   * aligned as the daemon's receive buffer is. */
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf)
    return 0;
  memcpy(buf, data, size);
  emx__wire_msg m;
  emx__errbuf err;
  if (emx__wire_decode(buf, size, &m, &err) == 0) {
    uint64_t arena = size * 1000003ULL;
    if (m.hdr.type == EMX_WIRE_BATCH) {
      size_t cursor = 0, n = 0;
      emx__wire_req req;
      while (emx__wire_batch_next(&m, &cursor, &req)) {
        for (size_t i = 0; i < (size_t)req.infer->nin + req.infer->nout; i++)
          (void)emx__wire_ref_ok(&req.refs[i], arena);
        n++;
      }
      if (n != m.u.batch.count)
        abort(); /* decode and walk disagree */
    } else if (m.hdr.type == EMX_WIRE_INFER) {
      for (size_t i = 0;
           i < (size_t)m.u.infer.infer->nin + m.u.infer.infer->nout; i++) {
        const emx__wire_ref *r = &m.u.infer.refs[i];
        if (emx__wire_ref_ok(r, arena) &&
            (r->offset > arena || r->offset + r->length > arena ||
             r->offset + r->length < r->offset))
          abort(); /* the check let an out-of-arena ref through */
      }
    }
  }
  free(buf);
  return 0;
}
