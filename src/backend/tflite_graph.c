/* tflite_graph.c — a check of a TFLite model's graphs that TFLite 2.9 does
 * not make, run by the model trial before TFLite builds an interpreter.
 *
 * TFLite's verifier checks the flatbuffer's layout, not its dataflow: an
 * operator that writes one of its own inputs (284 bytes suffice) makes
 * TfLiteInterpreterCreate write out of bounds, and what happens next
 * depends on what the heap held. In the trial's fresh process it may pass
 * unnoticed; in the daemon's, the same bytes then asked for a 2^63-byte
 * allocation and took the daemon down (seen under ThreadSanitizer). A trial
 * can only vouch for deterministic behaviour, so graphs outside the
 * single-writer dataflow TFLite's memory planner assumes are refused here,
 * by rule, before TFLite sees them:
 *   - an operator's output that is also one of its inputs;
 *   - a tensor written by two operators;
 *   - an operator's tensor index outside the subgraph's tensors.
 * Every read is bounds-checked, so any bytes are safe to pass. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/tflite.h"

typedef struct fb {
  const uint8_t *b;
  uint64_t n;
} fb;

static bool u32_at(const fb *f, uint64_t at, uint32_t *v) {
  if (at > f->n || f->n - at < 4)
    return false;
  memcpy(v, f->b + at, 4);
  return true;
}

/* field: where field `idx` of the table at `table` lies, 0 when absent
 * (or when the table is malformed). */
static uint64_t field(const fb *f, uint64_t table, unsigned idx) {
  uint32_t so;
  if (!u32_at(f, table, &so))
    return 0;
  int64_t vt = (int64_t)table - (int32_t)so;
  uint16_t vsize, off;
  if (vt < 0 || (uint64_t)vt + 4 > f->n)
    return 0;
  memcpy(&vsize, f->b + vt, 2);
  if (4 + 2 * (uint64_t)idx + 2 > vsize || (uint64_t)vt + vsize > f->n)
    return 0;
  memcpy(&off, f->b + vt + 4 + 2 * idx, 2);
  return off ? table + off : 0;
}

/* deref: the position a uoffset at `at` points to, 0 when out of bounds. */
static uint64_t deref(const fb *f, uint64_t at) {
  uint32_t o;
  if (!at || !u32_at(f, at, &o) || at + o >= f->n)
    return 0;
  return at + o;
}

/* vec: the vector the uoffset at `at` points to: its first element and
 * length (elements of 4 bytes); false when absent or out of bounds. */
static bool vec(const fb *f, uint64_t at, uint64_t *first, uint32_t *len) {
  uint64_t v = deref(f, at);
  if (!v || !u32_at(f, v, len) || (uint64_t)*len * 4 > f->n - v - 4)
    return false;
  *first = v + 4;
  return true;
}

/* The schema's field numbers (tensorflow/lite/schema/schema.fbs). */
enum { MODEL_SUBGRAPHS = 2 };
enum { SUBGRAPH_TENSORS = 0, SUBGRAPH_OPERATORS = 3 };
enum { OPERATOR_INPUTS = 1, OPERATOR_OUTPUTS = 2 };

static int check_operator(const fb *f, uint64_t op, uint32_t s, uint32_t j,
                          uint32_t ntensors, uint32_t *writer,
                          emx__errbuf *err) {
  uint64_t in = 0, out;
  uint32_t nin = 0, nout;
  if (!vec(f, field(f, op, OPERATOR_OUTPUTS), &out, &nout))
    return 0; /* no outputs: nothing written */
  if (!vec(f, field(f, op, OPERATOR_INPUTS), &in, &nin))
    nin = 0; /* absent (vec says so for a 0 field) or out of bounds */
  for (uint32_t k = 0; k < nout; k++) {
    uint32_t raw = 0; /* in bounds: vec checked the length */
    u32_at(f, out + 4 * (uint64_t)k, &raw);
    int32_t t = (int32_t)raw;
    if (t == -1) /* an optional output left out */
      continue;
    if (t < 0 || (uint32_t)t >= ntensors)
      return emx__errf(err, EMX_EMODEL,
                       "subgraph %u, operator %u: output tensor %d does not "
                       "exist (the subgraph has %u)",
                       s, j, t, ntensors);
    for (uint32_t i = 0; i < nin; i++) {
      uint32_t x = 0;
      u32_at(f, in + 4 * (uint64_t)i, &x);
      if ((int32_t)x == t)
        return emx__errf(err, EMX_EMODEL,
                         "subgraph %u, operator %u writes tensor %d, which "
                         "is also one of its inputs (TensorFlow Lite 2.9 "
                         "corrupts memory on such a graph)",
                         s, j, t);
    }
    if (writer[t])
      return emx__errf(err, EMX_EMODEL,
                       "subgraph %u: tensor %d is written by operators %u "
                       "and %u (each tensor may have one producer)",
                       s, t, writer[t] - 1, j);
    writer[t] = j + 1;
  }
  return 0;
}

int emx__tfl_graph_check(const void *data, size_t size, emx__errbuf *err) {
  fb f = {.b = data, .n = size};
  uint32_t model; /* the root table: a uoffset at 0 */
  uint64_t subs;
  uint32_t nsubs;
  /* Malformed beyond this point: TFLite's verifier says so better. */
  if (!u32_at(&f, 0, &model) || model >= f.n ||
      !vec(&f, field(&f, model, MODEL_SUBGRAPHS), &subs, &nsubs))
    return 0;
  for (uint32_t s = 0; s < nsubs; s++) {
    uint64_t sg = deref(&f, subs + 4 * (uint64_t)s);
    uint64_t tensors, ops;
    uint32_t ntensors = 0, nops;
    if (!sg || !vec(&f, field(&f, sg, SUBGRAPH_OPERATORS), &ops, &nops))
      continue;
    if (!vec(&f, field(&f, sg, SUBGRAPH_TENSORS), &tensors, &ntensors))
      ntensors = 0;
    uint32_t *writer = calloc(ntensors ? ntensors : 1, sizeof *writer);
    if (!writer)
      return emx__errf(err, EMX_ENOMEM, "out of memory checking the graph");
    int rc = 0;
    for (uint32_t j = 0; j < nops && rc == 0; j++) {
      uint64_t op = deref(&f, ops + 4 * (uint64_t)j);
      if (op)
        rc = check_operator(&f, op, s, j, ntensors, writer, err);
    }
    free(writer);
    if (rc < 0)
      return rc;
  }
  return 0;
}
