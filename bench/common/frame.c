/* bench/common/frame.c — see frame.h. */
#include "common/frame.h"

void bench_draw_frame(uint8_t *rgb, int side, int seed, const bench_block *b) {
  for (int y = 0; y < side; y++)
    for (int x = 0; x < side; x++)
      for (int c = 0; c < 3; c++)
        rgb[(y * side + x) * 3 + c] =
            (uint8_t)((x * (c + 1) + y * 2 + seed) / 3);
  for (int y = b->y0; y < b->y1; y++)
    for (int x = b->x0; x < b->x1; x++)
      for (int c = 0; c < 3; c++)
        rgb[(y * side + x) * 3 + c] = (uint8_t)(b->base + b->step * c);
}
