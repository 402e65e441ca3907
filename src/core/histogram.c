/* histogram.c — log-linear histogram (see histogram.h for the layout). */
#include "core/histogram.h"

static unsigned bucket_of(uint64_t v) {
  if (v < EMX__HIST_SUB)
    return (unsigned)v;
  unsigned msb = 63u - (unsigned)__builtin_clzll(v);
  unsigned shift = msb - EMX__HIST_SUB_BITS;
  /* (v >> shift) is in [SUB, 2*SUB): its low bits pick the sub-bucket. */
  return (shift + 1) * EMX__HIST_SUB +
         (unsigned)((v >> shift) & (EMX__HIST_SUB - 1));
}

static double bucket_mid(unsigned b) {
  if (b < EMX__HIST_SUB)
    return b;
  unsigned shift = b / EMX__HIST_SUB - 1;
  double lo = (double)((uint64_t)(EMX__HIST_SUB + b % EMX__HIST_SUB) << shift);
  return lo + (double)((uint64_t)1 << shift) / 2.0;
}

void emx__hist_add(emx__hist *h, uint64_t value) {
  h->bucket[bucket_of(value)]++;
  h->count++;
}

double emx__hist_quantile(const emx__hist *h, double q) {
  if (h->count == 0)
    return 0;
  if (q < 0)
    q = 0;
  if (q > 1)
    q = 1;
  /* The rank of the q-quantile, 1-based: ceil(q * count), at least 1. */
  uint64_t rank = (uint64_t)(q * (double)h->count);
  if ((double)rank < q * (double)h->count)
    rank++;
  if (rank == 0)
    rank = 1;
  uint64_t seen = 0;
  for (unsigned b = 0; b < EMX__HIST_BUCKETS; b++) {
    seen += h->bucket[b];
    if (seen >= rank)
      return bucket_mid(b);
  }
  return bucket_mid(EMX__HIST_BUCKETS - 1);
}
