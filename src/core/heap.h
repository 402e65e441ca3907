/* heap.h — what malloc has handed out in this process, for reports and the
 * model trial's memory bound. */
#ifndef EMX_CORE_HEAP_H
#define EMX_CORE_HEAP_H

#include <malloc.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define EMX__SANITIZED_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define EMX__SANITIZED_HEAP 1
#endif
#endif

/* emx__heap_bytes: glibc's in-use bytes, mmapped blocks included (a large
 * tensor arena is mmapped: counted though no page was touched). 0 in a
 * sanitizer build: the sanitizer's allocator replaces glibc's, and calling
 * mallinfo2 there walks glibc's own arenas, which attached TSan's worker
 * threads to one; glibc then aborted at their exit ("malloc assertion
 * failure in __malloc_arena_thread_freeres"). */
static inline long long emx__heap_bytes(void) {
#ifdef EMX__SANITIZED_HEAP
  return 0;
#else
  struct mallinfo2 mi = mallinfo2();
  return (long long)(mi.uordblks + mi.hblkhd);
#endif
}

#endif
