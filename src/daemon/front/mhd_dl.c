/* mhd_dl.c — libmicrohttpd, opened when an HTTP door is asked for (see
 * optlib.h): the MHD_* functions the doors call, forwarded. */
#include <microhttpd.h>
#include <stdarg.h>

#include "daemon/front/optlib.h"

#ifndef EMX_MHD_SONAME
#error "EMX_MHD_SONAME (libmicrohttpd's soname) comes from CMakeLists.txt"
#endif

/* X(return type, name, parameters, arguments) */
#define MHD_FUNCS(X)                                                           \
  X(enum MHD_Result, MHD_add_response_header,                                  \
    (struct MHD_Response * r, const char *h, const char *c), (r, h, c))        \
  X(struct MHD_Response *, MHD_create_response_from_buffer,                    \
    (size_t n, void *b, enum MHD_ResponseMemoryMode m), (n, b, m))             \
  X(struct MHD_Response *, MHD_create_response_from_iovec,                     \
    (const struct MHD_IoVec *v, unsigned int n,                                \
     MHD_ContentReaderFreeCallback f, void *cls),                              \
    (v, n, f, cls))                                                            \
  X(enum MHD_Result, MHD_is_feature_supported, (enum MHD_FEATURE f), (f))      \
  X(const char *, MHD_lookup_connection_value,                                 \
    (struct MHD_Connection * c, enum MHD_ValueKind k, const char *key),        \
    (c, k, key))                                                               \
  X(enum MHD_Result, MHD_queue_response,                                       \
    (struct MHD_Connection * c, unsigned int s, struct MHD_Response *r),       \
    (c, s, r))                                                                 \
  X(MHD_socket, MHD_quiesce_daemon, (struct MHD_Daemon * d), (d))

/* X(name, parameters, arguments): the ones returning nothing. */
#define MHD_VOID_FUNCS(X)                                                      \
  X(MHD_destroy_response, (struct MHD_Response * r), (r))                      \
  X(MHD_resume_connection, (struct MHD_Connection * c), (c))                   \
  X(MHD_stop_daemon, (struct MHD_Daemon * d), (d))                             \
  X(MHD_suspend_connection, (struct MHD_Connection * c), (c))

/* The variadic ones: start_daemon goes through its va_list twin;
 * get_*_info take no further arguments for the kinds the doors ask. */
typedef struct MHD_Daemon *(*start_va_fn)(unsigned int, uint16_t,
                                          MHD_AcceptPolicyCallback, void *,
                                          MHD_AccessHandlerCallback, void *,
                                          va_list);
typedef const union MHD_ConnectionInfo *(*conn_info_fn)(
    struct MHD_Connection *, enum MHD_ConnectionInfoType, ...);
typedef const union MHD_DaemonInfo *(*daemon_info_fn)(struct MHD_Daemon *,
                                                      enum MHD_DaemonInfoType,
                                                      ...);

#define NAME(ret, name, params, args) #name,
#define VOID_NAME(name, params, args) #name,
static const char *const names[] = {
    MHD_FUNCS(NAME) MHD_VOID_FUNCS(VOID_NAME) "MHD_start_daemon_va",
    "MHD_get_connection_info", "MHD_get_daemon_info"};
#undef NAME
#undef VOID_NAME
#define COUNT (sizeof names / sizeof names[0])

static union {
  void *slot[COUNT];
  struct {
#define FIELD(ret, name, params, args) ret(*name) params;
#define VOID_FIELD(name, params, args) void(*name) params;
    MHD_FUNCS(FIELD)
    MHD_VOID_FUNCS(VOID_FIELD)
#undef FIELD
#undef VOID_FIELD
    start_va_fn start_va;
    conn_info_fn conn_info;
    daemon_info_fn daemon_info;
  } f;
} lib;
/* One slot per name, in the same order: the names list and the fields
 * come from the same lists. */
_Static_assert(sizeof lib.f == sizeof lib.slot,
               "a function without its name, or a name without its field");

static emxd_optlib optlib =
    EMXD_OPTLIB_INIT(EMX_MHD_SONAME, names, lib.slot, COUNT,
                     "the HTTP door (--http, --metrics)", "libmicrohttpd12");

int emxd_mhd_load(emx__errbuf *err) {
  return emxd_optlib_load(&optlib, err);
}

#define FORWARD(ret, name, params, args)                                       \
  ret name params {                                                            \
    return lib.f.name args;                                                    \
  }
#define VOID_FORWARD(name, params, args)                                       \
  void name params {                                                           \
    lib.f.name args;                                                           \
  }
MHD_FUNCS(FORWARD)
MHD_VOID_FUNCS(VOID_FORWARD)
#undef FORWARD
#undef VOID_FORWARD

struct MHD_Daemon *MHD_start_daemon(unsigned int flags, uint16_t port,
                                    MHD_AcceptPolicyCallback apc, void *apc_cls,
                                    MHD_AccessHandlerCallback dh, void *dh_cls,
                                    ...) {
  va_list ap;
  va_start(ap, dh_cls);
  struct MHD_Daemon *d =
      lib.f.start_va(flags, port, apc, apc_cls, dh, dh_cls, ap);
  va_end(ap);
  return d;
}

const union MHD_ConnectionInfo *
MHD_get_connection_info(struct MHD_Connection *c,
                        enum MHD_ConnectionInfoType kind, ...) {
  return lib.f.conn_info(c, kind);
}

const union MHD_DaemonInfo *
MHD_get_daemon_info(struct MHD_Daemon *d, enum MHD_DaemonInfoType kind, ...) {
  return lib.f.daemon_info(d, kind);
}
