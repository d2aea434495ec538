/* Synthetic Llama-shaped models (synth_gen.c), written straight into an
 * image.  The generator and its statistics are described in
 * docs/runtime.md. */
#ifndef FLEXPAGE_TOOL_SYNTH_H
#define FLEXPAGE_TOOL_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include <flexpage/flexpage.h>
#include <flexrt/runtime.h>

struct synth_shape {
	const char *name;
	struct frt_config cfg;
	int shared_classifier;
};

/* The named shapes, ending with a NULL name. */
extern const struct synth_shape synth_shapes[];
/* A named shape, or "DIM,HIDDEN,LAYERS,HEADS,KV_HEADS,VOCAB,SEQ[,shared]"
 * into *out; -1 with a message. */
int synth_parse_shape(const char *s, struct synth_shape *out, char *err, size_t errlen);

/* Bytes of all the tensors (not the image's padding). */
uint64_t synth_tensor_bytes(const struct frt_config *cfg, int shared, int type);

/* Write meta and every tensor of a model of this shape into w, quantizing
 * the matrices to type.  The bytes depend only on shape, type and seed, not
 * on threads (compute threads, the caller included).  -1 with a message. */
int synth_write(fp_writer *w, const struct frt_config *cfg, int shared, int type,
                uint64_t seed, int threads, char *err, size_t errlen);

#endif
