/* abi.h — reading and filling the caller's size-led public structs.
 *
 * A public struct begins with `size_t struct_size`: its size in the header the
 * caller was compiled against (edgemux.h, "ABI"). These helpers move bytes
 * between the caller's struct and the library's own full-size copy, so the
 * rest of the library only ever sees structs of its own size. */
#ifndef EMX_CORE_ABI_H
#define EMX_CORE_ABI_H

#include <stddef.h>

#include "core/error.h"

/* emx__abi_in copies the caller's struct `user` (its size in its first
 * field) over `own` (the library's struct of `own_size` bytes, already
 * holding the defaults): fields the caller's size does not cover keep their
 * defaults. EMX_EINVAL when `struct_size` is too small to be real (the struct was
 * never initialised); EMX_EVERSION when the caller's struct is larger and a
 * byte the library does not know is not zero. `what` names the struct type
 * in the message. own's size field becomes own_size. */
int emx__abi_in(void *own, size_t own_size, const void *user, const char *what,
                emx__errbuf *err);

/* emx__abi_out copies the library's `own` (own_size bytes) into the caller's
 * `user`, no further than user's size field allows; the caller's bytes past
 * own_size become zero. user's size field becomes the bytes written.
 * EMX_EINVAL (nothing written) when that size is too small to be real. */
int emx__abi_out(void *user, const void *own, size_t own_size, const char *what,
                 emx__errbuf *err);

/* emx__abi_init fills the caller's struct with `defaults` (the library's
 * struct of own_size bytes) as far as its size field reaches, zeroing any
 * bytes past own_size; the size field keeps the caller's value. Does nothing
 * when that size is too small to be real. */
void emx__abi_init(void *user, const void *defaults, size_t own_size);

#endif
