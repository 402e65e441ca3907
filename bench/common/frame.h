/*
 * bench/common/frame.h — the synthetic camera frame the Frigate benchmark
 * and demo send: an RGB gradient with one solid block in it, so that a
 * detector has an edge to look at and every run sends the same bytes.
 */
#ifndef EMX_BENCH_COMMON_FRAME_H
#define EMX_BENCH_COMMON_FRAME_H

#include <stdint.h>

/* bench_block is the solid block: rows [y0, y1), columns [x0, x1), channel
 * c holding base + step * c. */
typedef struct bench_block {
  int y0, y1, x0, x1;
  int base, step;
} bench_block;

/* bench_draw_frame fills rgb (side x side x 3 bytes, row-major, channels
 * last) with the gradient (x * (c + 1) + y * 2 + seed) / 3, then the
 * block. */
void bench_draw_frame(uint8_t *rgb, int side, int seed, const bench_block *b);

#endif
