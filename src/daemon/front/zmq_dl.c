/* zmq_dl.c — libzmq, opened when a ZeroMQ door is asked for (see
 * optlib.h): the zmq_* functions the door calls, forwarded. */
#include <zmq.h>

#include "daemon/front/optlib.h"

#ifndef EMX_ZMQ_SONAME
#error "EMX_ZMQ_SONAME (libzmq's soname) comes from CMakeLists.txt"
#endif

/* X(return type, name, parameters, arguments) */
#define ZMQ_FUNCS(X)                                                           \
  X(int, zmq_bind, (void *s, const char *addr), (s, addr))                     \
  X(int, zmq_close, (void *s), (s))                                            \
  X(void *, zmq_ctx_new, (void), ())                                           \
  X(int, zmq_ctx_term, (void *ctx), (ctx))                                     \
  X(int, zmq_errno, (void), ())                                                \
  X(int, zmq_msg_close, (zmq_msg_t * m), (m))                                  \
  X(void *, zmq_msg_data, (zmq_msg_t * m), (m))                                \
  X(int, zmq_msg_init, (zmq_msg_t * m), (m))                                   \
  X(int, zmq_msg_more, (const zmq_msg_t *m), (m))                              \
  X(int, zmq_msg_move, (zmq_msg_t * to, zmq_msg_t * from), (to, from))         \
  X(int, zmq_msg_recv, (zmq_msg_t * m, void *s, int flags), (m, s, flags))     \
  X(size_t, zmq_msg_size, (const zmq_msg_t *m), (m))                           \
  X(int, zmq_poll, (zmq_pollitem_t * items, int n, long timeout),              \
    (items, n, timeout))                                                       \
  X(int, zmq_send, (void *s, const void *buf, size_t len, int flags),          \
    (s, buf, len, flags))                                                      \
  X(int, zmq_setsockopt, (void *s, int opt, const void *v, size_t len),        \
    (s, opt, v, len))                                                          \
  X(void *, zmq_socket, (void *ctx, int type), (ctx, type))                    \
  X(const char *, zmq_strerror, (int e), (e))

#define NAME(ret, name, params, args) #name,
static const char *const names[] = {ZMQ_FUNCS(NAME)};
#undef NAME
#define COUNT (sizeof names / sizeof names[0])

static union {
  void *slot[COUNT];
  struct {
#define FIELD(ret, name, params, args) ret(*name) params;
    ZMQ_FUNCS(FIELD)
#undef FIELD
  } f;
} lib;
/* One slot per name, in the same order: the names list and the fields
 * come from the same lists. */
_Static_assert(sizeof lib.f == sizeof lib.slot,
               "a function without its name, or a name without its field");

static emxd_optlib optlib =
    EMXD_OPTLIB_INIT(EMX_ZMQ_SONAME, names, lib.slot, COUNT,
                     "the ZeroMQ door (--zmq)", "libzmq5");

int emxd_zmq_load(emx__errbuf *err) {
  return emxd_optlib_load(&optlib, err);
}

#define FORWARD(ret, name, params, args)                                       \
  ret name params {                                                            \
    return lib.f.name args;                                                    \
  }
ZMQ_FUNCS(FORWARD)
#undef FORWARD
