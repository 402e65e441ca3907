/* histogram.h — fixed-size log-linear latency histogram. */
#ifndef EMX_CORE_HISTOGRAM_H
#define EMX_CORE_HISTOGRAM_H

#include <stdint.h>

/* Values are grouped by their highest set bit, each group split into
 * EMX__HIST_SUB linear sub-buckets: relative error <= 1/EMX__HIST_SUB (about
 * 3%) at any magnitude, in a fixed 7.5 KiB, so memory stays bounded however
 * many requests are recorded. */
#define EMX__HIST_SUB_BITS 5
#define EMX__HIST_SUB (1 << EMX__HIST_SUB_BITS)
#define EMX__HIST_BUCKETS ((64 - EMX__HIST_SUB_BITS + 1) * EMX__HIST_SUB)

typedef struct emx__hist {
  uint64_t count;                     /* values recorded */
  uint32_t bucket[EMX__HIST_BUCKETS]; /* counts per bucket */
} emx__hist;

/* emx__hist_add records one value (e.g. nanoseconds). Not thread-safe: the
 * owner serialises. */
void emx__hist_add(emx__hist *h, uint64_t value);

/* emx__hist_quantile returns the value at quantile q in [0,1] (the middle of
 * its bucket), or 0 when empty. */
double emx__hist_quantile(const emx__hist *h, double q);

#endif
