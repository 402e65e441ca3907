/* main.c — edgemuxd: flags, config, then the server loop. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "daemon/daemon.h"

int emxd_log_level_parse(const char *s);

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: edgemuxd [options]\n"
      "\n"
      "The edgemux broker: owns this machine's inference devices and serves\n"
      "local clients over a Unix socket, tensors in shared memory.\n"
      "\n"
      "  --socket PATH            listen here (default: $EDGEMUX_SOCKET, else\n"
      "                           $XDG_RUNTIME_DIR/edgemux.sock for users "
      "other\n"
      "                           than root, else /run/edgemux/edgemux.sock)\n"
      "  --device SPEC            a device, repeatable (default: cpu = one "
      "worker\n"
      "                           per core); e.g. cpu:workers=2,threads=1\n"
      "  --models DIR             model repository: DIR/<name>/model.tflite "
      "and\n"
      "                           optional DIR/<name>/config.json\n"
      "  --config FILE            JSON file with the same settings (flags "
      "given\n"
      "                           after it override it)\n"
      "  --log-level LEVEL        error, warn, info (default), debug\n"
      "  --queue-capacity N       queued requests per device (256)\n"
      "  --max-inflight N         requests in flight per client (256)\n"
      "  --max-conns-per-uid N    connections per user id (256)\n"
      "  --handshake-timeout-ms N time a client has to say hello (5000)\n"
      "  --max-outbox-bytes N     replies queued for a client that does not "
      "read\n"
      "                           before it is dropped (1048576)\n"
      "  --max-arena-bytes N      largest shared arena accepted (1073741824)\n"
      "  --allow-uid UID          also accept this user (repeatable; root and "
      "the\n"
      "                           daemon's own user and group are always "
      "allowed)\n"
      "  --allow-gid GID          also accept this group (repeatable)\n"
      "  --no-client-models       refuse clients' LOAD (only the repository)\n"
      "  --max-client-models N    models one uid may load (default 16)\n"
      "  --max-client-model-mb N  MiB of models one uid may load (default "
      "1024)\n"
      "  --model-idle-s N         unload a client's model unused this long\n"
      "                           (default 600; 0 = never)\n"
      "  --max-model-memory-mb N  memory a client's model may take when its\n"
      "                           trial runs it (default 1024)\n"
      "  --load-timeout-s N       longest a LOAD waits for a busy device to\n"
      "                           take the model (default 30)\n"
      "  --stop-timeout-s N       after SIGTERM, exit within this even if a\n"
      "                           device hangs (default 90)\n"
      "  --client-weight UID:W    fair share of this user's connections on\n"
      "                           devices with sched=fair (default 1; W up\n"
      "                           to 1000; repeatable)\n"
      "  --http [ADDR:]PORT       serve KServe v2 / Open Inference Protocol "
      "over\n"
      "                           HTTP, with Triton's binary tensors and "
      "/metrics\n"
      "                           (off by default; ADDR defaults to "
      "127.0.0.1)\n"
      "  --metrics [ADDR:]PORT    serve Prometheus /metrics alone on this "
      "port\n"
      "  --http-max-body-bytes N  largest request body (67108864)\n"
      "  --http-max-header-bytes N  largest request header block (16384)\n"
      "  --http-max-connections N open HTTP connections, all clients (1024)\n"
      "  --http-idle-timeout-s N  close a silent HTTP connection (30)\n"
      "  --http-request-timeout-ms N  time to upload a body, and the default\n"
      "                           deadline of an HTTP infer (60000)\n"
      "  --http-threads N         HTTP polling threads (2)\n"
      "  --http-token-file FILE   require 'Authorization: Bearer <token>' "
      "(the\n"
      "                           file's first line) except on /v2/health\n"
      "  --tls-cert FILE, --tls-key FILE  serve HTTPS (PEM)\n"
      "  --max-incomplete-conns N connections that have not said hello yet, "
      "all\n"
      "                           users together (64)\n"
      "  --max-arena-bytes-per-uid N  shared arena bytes of one user's\n"
      "                           connections together (17179869184)\n"
      "  --socket-mode MODE       the socket file's mode, octal (0660)\n"
      "  --socket-group GROUP     the socket file's group (name or gid): "
      "with\n"
      "                           --socket-mode, who may connect at all\n"
      "  --zmq ENDPOINT           answer Frigate's zmq detector on this "
      "ZeroMQ\n"
      "                           endpoint (bound; ipc:///tmp/cache/"
      "zmq_detector,\n"
      "                           tcp://*:5555; repeatable)\n"
      "  --zmq-timeout-ms N       answer zero rows to a frame not done in "
      "time\n"
      "                           (180; keep it under Frigate's "
      "request_timeout_ms)\n"
      "  --zmq-max-peers N        Frigate detector sockets served at once "
      "(64)\n"
      "  --help, --version\n"
      "\n"
      "Signals: SIGTERM/SIGINT finish in-flight work and exit 0; SIGHUP "
      "rescans\n"
      "the model repository. Socket activation (LISTEN_FDS) is supported.\n");
}

static long number(const char *flag, const char *s, long min) {
  char *end;
  long n = strtol(s, &end, 10);
  if (!*s || *end || n < min) {
    fprintf(stderr, "edgemuxd: %s needs an integer >= %ld, got \"%s\"\n", flag,
            min, s);
    exit(2);
  }
  return n;
}

int main(int argc, char **argv) {
  enum {
    O_SOCKET = 256,
    O_DEVICE,
    O_MODELS,
    O_CONFIG,
    O_LOG,
    O_QCAP,
    O_INFLIGHT,
    O_CONNS,
    O_HANDSHAKE,
    O_OUTBOX,
    O_ARENA,
    O_UID,
    O_GID,
    O_LOAD,
    O_WEIGHT,
    O_HTTP,
    O_METRICS,
    O_HBODY,
    O_HHEADER,
    O_HCONNS,
    O_HIDLE,
    O_HREQ,
    O_HTHREADS,
    O_HTOKEN,
    O_TLSCERT,
    O_TLSKEY,
    O_NOCLIENT,
    O_CMODELS,
    O_CMB,
    O_IDLE,
    O_MODELMEM,
    O_LOADTIME,
    O_STOPTIME,
    O_ZMQ,
    O_ZTIMEOUT,
    O_ZPEERS,
    O_HELP,
    O_VERSION,
    O_INCOMPLETE,
    O_ARENA_UID,
    O_SMODE,
    O_SGROUP
  };
  static const struct option opts[] = {
      {"socket", required_argument, 0, O_SOCKET},
      {"device", required_argument, 0, O_DEVICE},
      {"models", required_argument, 0, O_MODELS},
      {"config", required_argument, 0, O_CONFIG},
      {"log-level", required_argument, 0, O_LOG},
      {"queue-capacity", required_argument, 0, O_QCAP},
      {"max-inflight", required_argument, 0, O_INFLIGHT},
      {"max-conns-per-uid", required_argument, 0, O_CONNS},
      {"handshake-timeout-ms", required_argument, 0, O_HANDSHAKE},
      {"max-outbox-bytes", required_argument, 0, O_OUTBOX},
      {"max-arena-bytes", required_argument, 0, O_ARENA},
      {"allow-uid", required_argument, 0, O_UID},
      {"allow-gid", required_argument, 0, O_GID},
      {"allow-load", no_argument, 0, O_LOAD},
      {"no-client-models", no_argument, 0, O_NOCLIENT},
      {"max-client-models", required_argument, 0, O_CMODELS},
      {"max-client-model-mb", required_argument, 0, O_CMB},
      {"model-idle-s", required_argument, 0, O_IDLE},
      {"max-model-memory-mb", required_argument, 0, O_MODELMEM},
      {"load-timeout-s", required_argument, 0, O_LOADTIME},
      {"stop-timeout-s", required_argument, 0, O_STOPTIME},
      {"client-weight", required_argument, 0, O_WEIGHT},
      {"http", required_argument, 0, O_HTTP},
      {"metrics", required_argument, 0, O_METRICS},
      {"http-max-body-bytes", required_argument, 0, O_HBODY},
      {"http-max-header-bytes", required_argument, 0, O_HHEADER},
      {"http-max-connections", required_argument, 0, O_HCONNS},
      {"http-idle-timeout-s", required_argument, 0, O_HIDLE},
      {"http-request-timeout-ms", required_argument, 0, O_HREQ},
      {"http-threads", required_argument, 0, O_HTHREADS},
      {"http-token-file", required_argument, 0, O_HTOKEN},
      {"tls-cert", required_argument, 0, O_TLSCERT},
      {"tls-key", required_argument, 0, O_TLSKEY},
      {"zmq", required_argument, 0, O_ZMQ},
      {"zmq-timeout-ms", required_argument, 0, O_ZTIMEOUT},
      {"zmq-max-peers", required_argument, 0, O_ZPEERS},
      {"help", no_argument, 0, O_HELP},
      {"version", no_argument, 0, O_VERSION},
      {"max-incomplete-conns", required_argument, 0, O_INCOMPLETE},
      {"max-arena-bytes-per-uid", required_argument, 0, O_ARENA_UID},
      {"socket-mode", required_argument, 0, O_SMODE},
      {"socket-group", required_argument, 0, O_SGROUP},
      {0, 0, 0, 0}};
  static emxd_options o;
  emxd_options_init(&o);
  bool devices_from_flags = false;
  int c;
  emx__errbuf err = {{0}};
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case O_SOCKET:
      if (snprintf(o.socket_path, sizeof o.socket_path, "%s", optarg) >=
          (int)sizeof o.socket_path) {
        fprintf(stderr, "edgemuxd: socket path too long (max %zu bytes)\n",
                sizeof o.socket_path - 1);
        return 2;
      }
      break;
    case O_DEVICE:
      if (!devices_from_flags)
        o.device_count = 0; /* flags replace the config file's list */
      devices_from_flags = true;
      if (o.device_count == EMX_D_MAX_DEVICES) {
        fprintf(stderr, "edgemuxd: at most %d --device flags\n",
                EMX_D_MAX_DEVICES);
        return 2;
      }
      o.devices[o.device_count++] = optarg;
      break;
    case O_MODELS:
      snprintf(o.models_dir, sizeof o.models_dir, "%s", optarg);
      break;
    case O_CONFIG:
      if (emxd_config_load(&o, optarg, &err) < 0) {
        fprintf(stderr, "edgemuxd: %s\n", err.msg);
        return 2;
      }
      break;
    case O_LOG:
      o.log_level = emxd_log_level_parse(optarg);
      if (o.log_level < 0) {
        fprintf(stderr, "edgemuxd: --log-level must be error, warn, info or "
                        "debug\n");
        return 2;
      }
      break;
    case O_QCAP:
      o.queue_capacity = (size_t)number("--queue-capacity", optarg, 1);
      break;
    case O_INFLIGHT:
      o.max_inflight = (uint32_t)number("--max-inflight", optarg, 1);
      break;
    case O_CONNS:
      o.max_conns_per_uid = (uint32_t)number("--max-conns-per-uid", optarg, 1);
      break;
    case O_HANDSHAKE:
      o.handshake_timeout_ns =
          number("--handshake-timeout-ms", optarg, 1) * 1000000LL;
      break;
    case O_OUTBOX:
      o.max_outbox = (size_t)number("--max-outbox-bytes", optarg, 1);
      break;
    case O_ARENA:
      o.max_arena = (uint64_t)number("--max-arena-bytes", optarg, 1);
      break;
    case O_UID:
    case O_GID: {
      size_t *count = c == O_UID ? &o.allow_uid_count : &o.allow_gid_count;
      if (*count == EMX_D_MAX_ALLOW) {
        fprintf(stderr, "edgemuxd: too many --allow-uid/--allow-gid\n");
        return 2;
      }
      long id = number(c == O_UID ? "--allow-uid" : "--allow-gid", optarg, 0);
      if (c == O_UID)
        o.allow_uids[(*count)++] = (uid_t)id;
      else
        o.allow_gids[(*count)++] = (gid_t)id;
      break;
    }
    case O_LOAD:
      /* Clients send bytes now, and may unless --no-client-models. */
      fprintf(stderr, "edgemuxd: --allow-load is no longer needed (clients "
                      "send model bytes; --no-client-models refuses them)\n");
      break;
    case O_NOCLIENT:
      o.no_client_models = true;
      break;
    case O_CMODELS:
      o.max_client_models = (uint32_t)number("--max-client-models", optarg, 0);
      break;
    case O_CMB:
      o.max_client_model_bytes =
          (uint64_t)number("--max-client-model-mb", optarg, 1) << 20;
      break;
    case O_IDLE:
      o.model_idle_ns = number("--model-idle-s", optarg, 0) * 1000000000LL;
      break;
    case O_MODELMEM:
      o.max_model_memory = (uint64_t)number("--max-model-memory-mb", optarg, 1)
                           << 20;
      break;
    case O_LOADTIME:
      o.load_timeout_ns = number("--load-timeout-s", optarg, 1) * 1000000000LL;
      break;
    case O_STOPTIME:
      o.stop_timeout_ns = number("--stop-timeout-s", optarg, 1) * 1000000000LL;
      break;
    case O_WEIGHT:
      if (emxd_weight_add(&o, optarg, &err) < 0) {
        fprintf(stderr, "edgemuxd: --client-weight: %s\n", err.msg);
        return 2;
      }
      break;
    case O_HTTP:
    case O_METRICS:
    case O_HTOKEN:
    case O_TLSCERT:
    case O_TLSKEY: {
      char *dst = c == O_HTTP      ? o.http_listen
                  : c == O_METRICS ? o.metrics_listen
                  : c == O_HTOKEN  ? o.http_token_file
                  : c == O_TLSCERT ? o.tls_cert
                                   : o.tls_key;
      size_t cap = c == O_HTTP || c == O_METRICS ? sizeof o.http_listen
                                                 : sizeof o.tls_cert;
      if (snprintf(dst, cap, "%s", optarg) >= (int)cap) {
        fprintf(stderr, "edgemuxd: %s is too long (at most %zu bytes)\n",
                argv[optind - 1], cap - 1);
        return 2;
      }
      break;
    }
    case O_HBODY:
      o.http_max_body = (size_t)number("--http-max-body-bytes", optarg, 1);
      break;
    case O_HHEADER:
      o.http_max_header =
          (size_t)number("--http-max-header-bytes", optarg, 1024);
      break;
    case O_HCONNS:
      o.http_max_conns = (unsigned)number("--http-max-connections", optarg, 1);
      break;
    case O_HIDLE:
      o.http_idle_timeout_s =
          (unsigned)number("--http-idle-timeout-s", optarg, 1);
      break;
    case O_HREQ:
      o.http_request_timeout_ns =
          number("--http-request-timeout-ms", optarg, 1) * 1000000LL;
      break;
    case O_HTHREADS:
      o.http_threads = (unsigned)number("--http-threads", optarg, 1);
      break;
    case O_INCOMPLETE:
      o.max_incomplete_conns =
          (uint32_t)number("--max-incomplete-conns", optarg, 1);
      break;
    case O_ARENA_UID:
      o.max_arena_per_uid =
          (uint64_t)number("--max-arena-bytes-per-uid", optarg, 1);
      break;
    case O_SMODE:
    case O_SGROUP:
      if ((c == O_SMODE ? emxd_socket_mode_set
                        : emxd_socket_group_set)(&o, optarg, &err) < 0) {
        fprintf(stderr, "edgemuxd: %s: %s\n", argv[optind - 1], err.msg);
        return 2;
      }
      break;
    case O_ZMQ:
      if (o.zmq_count == EMXD_MAX_ZMQ) {
        fprintf(stderr, "edgemuxd: at most %d --zmq endpoints\n", EMXD_MAX_ZMQ);
        return 2;
      }
      if (snprintf(o.zmq_endpoints[o.zmq_count], sizeof o.zmq_endpoints[0],
                   "%s", optarg) >= (int)sizeof o.zmq_endpoints[0]) {
        fprintf(stderr,
                "edgemuxd: --zmq endpoint too long (at most %zu "
                "bytes)\n",
                sizeof o.zmq_endpoints[0] - 1);
        return 2;
      }
      o.zmq_count++;
      break;
    case O_ZTIMEOUT:
      o.zmq_timeout_ns = number("--zmq-timeout-ms", optarg, 1) * 1000000LL;
      break;
    case O_ZPEERS:
      o.zmq_max_peers = (unsigned)number("--zmq-max-peers", optarg, 1);
      break;
    case O_HELP:
      usage(stdout);
      return 0;
    case O_VERSION:
      printf("edgemuxd %s\n", emx_version());
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "edgemuxd: unexpected argument \"%s\" (see --help)\n",
            argv[optind]);
    return 2;
  }
  emx__log_set_level(o.log_level);
  return emxd_server_run(&o);
}
