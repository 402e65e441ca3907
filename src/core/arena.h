/* arena.h — the shared-memory tensor arena: a sealed memfd.
 *
 * The client creates it, seals it against shrinking and growing, and passes
 * the fd at hello. The daemon accepts only a memfd whose seals include
 * F_SEAL_SHRINK and F_SEAL_GROW and whose size equals what the client
 * declared: a client can then never make the daemon fault (SIGBUS) by
 * truncating the file under a mapping. */
#ifndef EMX_CORE_ARENA_H
#define EMX_CORE_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct emx__arena {
  int fd;        /* the memfd, -1 when none */
  void *base;    /* MAP_SHARED mapping, NULL when none */
  uint64_t size; /* bytes */
} emx__arena;

/* emx__arena_create makes, sizes, seals and maps a new arena (client). */
int emx__arena_create(emx__arena *a, uint64_t size, emx__errbuf *err);

/* emx__arena_accept checks a received fd and maps it (daemon). Takes
 * ownership of fd: on failure it is closed. */
int emx__arena_accept(emx__arena *a, int fd, uint64_t declared, uint64_t max,
                      emx__errbuf *err);

/* emx__arena_close unmaps and closes. */
void emx__arena_close(emx__arena *a);

/* emx__memfd_sealed copies len bytes into a new memfd named `name`, sealed
 * against any change (shrink, grow, write, more seals): bytes another
 * process checks once and may trust after. Returns the fd, or -errno
 * (-ENOSPC for a write that made no progress). */
int emx__memfd_sealed(const char *name, const void *data, size_t len);

#endif
