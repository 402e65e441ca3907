/* placement.c — where a model may run, and which device gets a request.
 *
 * A placement is an ordered list of tiers separated by ',', each tier a set
 * of alternatives separated by '|'; an alternative is a device name
 * ("sim0") or a kind ("edgetpu", "cpu"). "edgetpu,cpu" means: any Edge TPU;
 * the CPU only while no Edge TPU that has the model is healthy. NULL or ""
 * is every device in one tier. */
#include <stdio.h>
#include <string.h>

#include "engine/internal.h"

int emx__placement_parse(emx_engine *e, const char *text, int8_t *tier,
                         emx__errbuf *err) {
  size_t n = e->device_count;
  for (size_t i = 0; i < n; i++)
    tier[i] = (int8_t)(text && *text ? -1 : 0);
  if (!text || !*text)
    return 0;
  if (strlen(text) >= 256)
    return emx__errf(err, EMX_EINVAL, "placement \"%.40s...\" is too long",
                     text);
  char buf[256];
  strcpy(buf, text);
  int t = 0;
  char *save_tier;
  for (char *tok = strtok_r(buf, ",", &save_tier); tok;
       tok = strtok_r(NULL, ",", &save_tier), t++) {
    if (t > 100)
      return emx__errf(err, EMX_EINVAL, "placement \"%s\": too many tiers",
                       text);
    char *save_alt;
    for (char *alt = strtok_r(tok, "|", &save_alt); alt;
         alt = strtok_r(NULL, "|", &save_alt)) {
      int matched = 0;
      for (size_t i = 0; i < n; i++) {
        const emx__device *dev = &e->devices[i];
        if (strcmp(alt, dev->name) == 0 || strcmp(alt, dev->kind) == 0) {
          matched = 1;
          if (tier[i] < 0) /* the first tier that names a device wins */
            tier[i] = (int8_t)t;
        }
      }
      if (!matched) {
        char names[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < n && used < sizeof names - 1; i++)
          used += (size_t)snprintf(names + used, sizeof names - used, "%s%s",
                                   i ? ", " : "", e->devices[i].name);
        return emx__errf(err, EMX_EINVAL,
                         "placement \"%s\": \"%s\" names no device of this "
                         "engine (devices: %s)",
                         text, alt, names);
      }
    }
  }
  return 0;
}

emx__device *emx__pick_device(emx_engine *e, const emx_model *m) {
  size_t n = e->device_count;
  size_t start = atomic_fetch_add(&e->rr, 1) % n;
  /* On a tie the device that last ran the model wins: its interpreter and
   * caches are warm (a cold run of a 1 ms model costs ~150 us more), and a
   * pool's workers settle into serving one model each, so a light model's
   * clients do not queue behind a heavy one's runs. */
  size_t warm =
      (size_t)atomic_load_explicit(&m->last_device, memory_order_relaxed);
  for (int t = 0; t <= m->max_tier; t++) {
    emx__device *best = NULL;
    size_t best_load = (size_t)-1;
    for (size_t k = 0; k < n; k++) {
      size_t i = (start + k) % n;
      emx__device *dev = &e->devices[i];
      if (m->tier[i] != t || !atomic_load(&dev->healthy))
        continue;
      /* Load = waiting + running; ties go to `warm`, else round-robin
       * from `start`. */
      size_t load =
          atomic_load_explicit(&dev->pending, memory_order_relaxed) +
          (size_t)atomic_load_explicit(&dev->busy, memory_order_relaxed);
      if (load < best_load || (load == best_load && i == warm)) {
        best = dev;
        best_load = load;
      }
    }
    if (best)
      return best;
  }
  return NULL;
}
