/* alloc.c — first-fit allocator over the shared tensor arena.
 *
 * Free and used blocks live in two offset-sorted arrays in client memory.
 * get is O(free blocks) (first fit) plus an O(used) insertion; put is a
 * binary search plus O(blocks) moves and coalesces with both neighbours.
 * Tensors are few and large, so this is plenty. */
#include <stdlib.h>
#include <string.h>

#include "client/internal.h"

#define ALIGN_UP(n)                                                            \
  (((n) + EMX__ALLOC_ALIGN - 1) & ~(uint64_t)(EMX__ALLOC_ALIGN - 1))

void emx__alloc_init(emx__alloc *a, uint64_t size) {
  memset(a, 0, sizeof *a);
  size &= ~(uint64_t)(EMX__ALLOC_ALIGN - 1); /* a ragged tail is unusable */
  if (size == 0)
    return;
  a->free = malloc(4 * sizeof *a->free);
  if (!a->free)
    return; /* behaves as a full arena: every get says ENOMEM */
  a->free_cap = 4;
  a->free[0] = (emx__block){0, size};
  a->nfree = 1;
}

void emx__alloc_fini(emx__alloc *a) {
  free(a->free);
  free(a->used);
  memset(a, 0, sizeof *a);
}

static int reserve(emx__block **arr, size_t *cap, size_t want) {
  if (want <= *cap)
    return 0;
  size_t n = *cap ? *cap : 4;
  while (n < want)
    n *= 2;
  emx__block *p = realloc(*arr, n * sizeof *p);
  if (!p)
    return EMX_ENOMEM;
  *arr = p;
  *cap = n;
  return 0;
}

/* lower_bound: first index whose offset is >= off. */
static size_t lower_bound(const emx__block *arr, size_t n, uint64_t off) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (arr[mid].off < off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

int emx__alloc_get(emx__alloc *a, uint64_t bytes, uint64_t *off) {
  if (bytes > UINT64_MAX - EMX__ALLOC_ALIGN)
    return EMX_ENOMEM;
  uint64_t need = bytes ? ALIGN_UP(bytes) : EMX__ALLOC_ALIGN;
  size_t i = 0;
  while (i < a->nfree && a->free[i].size < need)
    i++;
  if (i == a->nfree)
    return EMX_ENOMEM;
  /* Room for the bookkeeping first, so that nothing can fail afterwards:
   * one more used block, and free capacity for a put that merges nothing. */
  if (reserve(&a->used, &a->used_cap, a->nused + 1) < 0 ||
      reserve(&a->free, &a->free_cap, a->nused + 2) < 0)
    return EMX_ENOMEM;
  emx__block *f = &a->free[i];
  uint64_t at = f->off;
  if (f->size == need) {
    memmove(f, f + 1, (a->nfree - i - 1) * sizeof *f);
    a->nfree--;
  } else {
    f->off += need;
    f->size -= need;
  }
  size_t u = lower_bound(a->used, a->nused, at);
  memmove(&a->used[u + 1], &a->used[u], (a->nused - u) * sizeof *a->used);
  a->used[u] = (emx__block){at, need};
  a->nused++;
  *off = at;
  return 0;
}

int emx__alloc_put(emx__alloc *a, uint64_t off) {
  size_t u = lower_bound(a->used, a->nused, off);
  if (u == a->nused || a->used[u].off != off)
    return EMX_EINVAL;
  emx__block b = a->used[u];
  memmove(&a->used[u], &a->used[u + 1], (a->nused - u - 1) * sizeof b);
  a->nused--;

  size_t i = lower_bound(a->free, a->nfree, b.off); /* insert before i */
  int merge_prev = i > 0 && a->free[i - 1].off + a->free[i - 1].size == b.off;
  int merge_next = i < a->nfree && b.off + b.size == a->free[i].off;
  if (merge_prev && merge_next) {
    a->free[i - 1].size += b.size + a->free[i].size;
    memmove(&a->free[i], &a->free[i + 1], (a->nfree - i - 1) * sizeof b);
    a->nfree--;
  } else if (merge_prev) {
    a->free[i - 1].size += b.size;
  } else if (merge_next) {
    a->free[i].off = b.off;
    a->free[i].size += b.size;
  } else {
    /* free_cap >= nused + 1 was reserved by get: this cannot overflow. */
    memmove(&a->free[i + 1], &a->free[i], (a->nfree - i) * sizeof b);
    a->free[i] = b;
    a->nfree++;
  }
  return 0;
}
