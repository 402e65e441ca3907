/* isolate_msg.h — the messages between an isolated device's proxy (in the
 * engine process, isolate.c) and its device host (the edgemux-devhost child,
 * src/devhost/devhost.c).
 *
 * Transport: one SOCK_SEQPACKET socketpair per device, the child's end on
 * its fd 3. Every message is one packet: an emx__iso_hdr, then a payload of
 * hdr.len bytes, and at most one fd passed with SCM_RIGHTS. Requests go
 * parent → child, each answered by one reply child → parent, in order:
 *
 *   (child starts)  → HELLO   status = the real backend's open result,
 *                             payload = its error message on failure
 *   PREPARE id, fd = sealed memfd holding the model, arg = its size
 *                   → PREPARE status, payload = serialised desc or message
 *   RELEASE id      (no reply)
 *   REGION  fd = sealed memfd for tensors, arg = its size
 *                   → REGION  status, payload = message on failure
 *   INVOKE  id      → INVOKE  status, arg = device ns, payload = message
 *   PROBE           → PROBE   status = the real backend's probe result
 *                             (for a backend without a probe: closing and
 *                             re-opening the device), payload = message
 *   CLOSE           (the child closes the device and exits: EOF is the
 *                   reply)
 *
 * Tensors travel through the REGION memfd, which both sides map: inputs in
 * order, then outputs, each at an offset rounded up to EMX__ISO_ALIGN, with
 * sizes from the model's desc (the engine has checked every buffer against
 * it). Handles are ids, not pointers: the two sides share no address
 * space. */
#ifndef EMX_BACKEND_ISOLATE_MSG_H
#define EMX_BACKEND_ISOLATE_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend/backend.h"
#include "backend/child.h"

#define EMX__ISO_FD EMX__CHILD_FD   /* the child's end of the socket */
#define EMX__ISO_ALIGN 64           /* tensor offsets in the region */
#define EMX__ISO_MSG_MAX (64 << 10) /* largest packet, header included */

enum {
  EMX__ISO_HELLO = 1,
  EMX__ISO_PREPARE,
  EMX__ISO_RELEASE,
  EMX__ISO_REGION,
  EMX__ISO_INVOKE,
  EMX__ISO_CLOSE,
  EMX__ISO_PROBE,
};

typedef struct emx__iso_hdr {
  uint32_t op;    /* EMX__ISO_* */
  uint32_t id;    /* prepared model id, 0 when none */
  int32_t status; /* replies: 0 or EMX_E* */
  uint32_t len;   /* payload bytes after the header */
  uint64_t arg;   /* op-specific: model/region size, device ns */
} emx__iso_hdr;

/* emx__iso_send sends one packet (header + payload, and fd when >= 0).
 * Never raises SIGPIPE. Returns 0 or -errno. */
int emx__iso_send(int sock, uint32_t op, uint32_t id, int32_t status,
                  uint64_t arg, const void *payload, size_t len, int fd);

/* emx__iso_recv receives one packet into buf (EMX__ISO_MSG_MAX bytes): *hdr
 * is its header, the payload follows it in buf. A passed fd lands in *fd
 * (CLOEXEC), else *fd = -1. Returns the packet size, 0 at EOF, or -errno
 * (-EPROTO for a truncated or malformed packet; any fd is closed then). */
ssize_t emx__iso_recv(int sock, void *buf, emx__iso_hdr *hdr, int *fd);

/* emx__iso_desc_encode serialises a desc into buf; returns its size, or 0
 * when it does not fit in cap. */
size_t emx__iso_desc_encode(const emx__model_desc *desc, void *buf, size_t cap);

/* emx__iso_desc_decode rebuilds a desc (heap-allocated, as backends make
 * them); EMX_EPROTO when the bytes are malformed, EMX_ENOMEM. */
int emx__iso_desc_decode(const void *buf, size_t len, emx__model_desc *desc,
                         emx__errbuf *err);

/* emx__iso_region_need is the region size a model needs: its inputs and
 * outputs, each rounded up to EMX__ISO_ALIGN. */
size_t emx__iso_region_need(const emx__model_desc *desc);

/* emx__iso_align rounds a size up to EMX__ISO_ALIGN. */
static inline size_t emx__iso_align(size_t n) {
  return (n + EMX__ISO_ALIGN - 1) & ~(size_t)(EMX__ISO_ALIGN - 1);
}

/* emx__iso_strip reads the isolation keys of a spec (isolate=0|1,
 * deadline_ms=N) and marks them used, so that the real backend, which knows
 * nothing of them, accepts the spec. *isolate is -1 when the key is absent;
 * *deadline_ms keeps its value then. EMX_EINVAL on a bad value. */
int emx__iso_strip(emx__devspec *spec, int *isolate, long *deadline_ms,
                   emx__errbuf *err);

#endif
