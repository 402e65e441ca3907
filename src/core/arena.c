/* arena.c — create, check and map sealed memfd arenas. */
#include "core/arena.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgemux/edgemux.h"

#define REQUIRED_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

int emx__arena_create(emx__arena *a, uint64_t size, emx__errbuf *err) {
  a->fd = -1;
  a->base = NULL;
  a->size = 0;
  if (size == 0)
    return 0;
  int fd = memfd_create("edgemux-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    return emx__errf(err, EMX_EIO, "memfd_create: %s", strerror(errno));
  if (ftruncate(fd, (off_t)size) < 0) {
    int e = errno;
    close(fd);
    return emx__errf(err, e == ENOMEM ? EMX_ENOMEM : EMX_EIO,
                     "sizing the %llu-byte arena: %s", (unsigned long long)size,
                     strerror(e));
  }
  /* F_SEAL_SEAL too: nobody can lift the others later. */
  if (fcntl(fd, F_ADD_SEALS, REQUIRED_SEALS | F_SEAL_SEAL) < 0) {
    int e = errno;
    close(fd);
    return emx__errf(err, EMX_EIO, "sealing the arena: %s", strerror(e));
  }
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    close(fd);
    return emx__errf(err, EMX_ENOMEM, "mapping the arena: %s", strerror(e));
  }
  a->fd = fd;
  a->base = p;
  a->size = size;
  return 0;
}

int emx__arena_accept(emx__arena *a, int fd, uint64_t declared, uint64_t max,
                      emx__errbuf *err) {
  a->fd = -1;
  a->base = NULL;
  a->size = 0;
  int rc;
  struct stat st;
  if (fstat(fd, &st) < 0) {
    rc = emx__errf(err, EMX_EPROTO, "arena fd: fstat: %s", strerror(errno));
    goto fail;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = emx__errf(err, EMX_EPROTO, "arena fd is not a memfd (mode 0%o)",
                   (unsigned)st.st_mode & S_IFMT);
    goto fail;
  }
  /* F_GET_SEALS fails with EINVAL on anything but a sealing-capable shmem
   * file, so this also tells a memfd from a regular file. */
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) {
    rc = emx__errf(err, EMX_EPROTO, "arena fd is not a sealable memfd");
    goto fail;
  }
  if ((seals & REQUIRED_SEALS) != REQUIRED_SEALS) {
    rc = emx__errf(err, EMX_EPROTO,
                   "arena memfd is not sealed against shrink and grow "
                   "(seals 0x%x): a truncation could crash the reader",
                   (unsigned)seals);
    goto fail;
  }
  if (declared == 0 || declared > max) {
    rc = emx__errf(err, EMX_EPROTO,
                   "arena of %llu bytes is out of range [1, %llu]",
                   (unsigned long long)declared, (unsigned long long)max);
    goto fail;
  }
  if ((uint64_t)st.st_size != declared) {
    rc = emx__errf(err, EMX_EPROTO,
                   "arena memfd is %lld bytes, hello declared %llu",
                   (long long)st.st_size, (unsigned long long)declared);
    goto fail;
  }
  void *p = mmap(NULL, declared, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    rc = emx__errf(err, EMX_ENOMEM, "mapping the arena: %s", strerror(errno));
    goto fail;
  }
  a->fd = fd;
  a->base = p;
  a->size = declared;
  return 0;
fail:
  close(fd);
  return rc;
}

void emx__arena_close(emx__arena *a) {
  if (a->base)
    munmap(a->base, a->size);
  if (a->fd >= 0)
    close(a->fd);
  a->fd = -1;
  a->base = NULL;
  a->size = 0;
}

int emx__memfd_sealed(const char *name, const void *data, size_t len) {
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    return -errno;
  for (size_t done = 0; done < len;) {
    ssize_t n = write(fd, (const char *)data + done, len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int e = n < 0 ? errno : ENOSPC;
      close(fd);
      return -e;
    }
    done += (size_t)n;
  }
  if (fcntl(fd, F_ADD_SEALS,
            F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}
