/* Wiring between model files and the runtime: which bytes of an image or
 * a llama2.c checkpoint are which weights, and the three ways to put them
 * in memory (a resident read, a plain mmap, a flexpage region).  Used by
 * `flexpage run`, the tests and the benchmarks. */
#ifndef FLEXPAGE_TOOL_MODEL_H
#define FLEXPAGE_TOOL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <flexpage/flexpage.h>
#include <flexrt/runtime.h>

/* ------------------------------------------------------------------ */
/* llama2.c checkpoints (model_import.c)                                */

/* Where each tensor group of a checkpoint starts (bytes from the file's
 * start); each group stacks its tensor over the layers. */
struct llama2c_layout {
	struct frt_config cfg;
	int shared_classifier;       /* vocab_size was positive */
	uint64_t file_size;
	uint64_t token_embd, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3,
	         rms_final, wcls;
};

/* Read and check the header of the open checkpoint fd (named path in
 * messages) against its size.  -1 with a message naming the file and the
 * field. */
int llama2c_read_layout(int fd, const char *path, struct llama2c_layout *lay,
                        char *err, size_t errlen);

/* The image meta text of a model: "arch=llama\ndim=...\n...type=q8_0\n". */
int model_format_meta(const struct frt_config *cfg, int shared_classifier, int type,
                      char *buf, size_t len);

/* The runtime's frt_config_check, shared by checkpoints and images: the
 * message names the file, then field_prefix ("header field", "meta key"),
 * then the field. */
int model_check_config(const struct frt_config *cfg, const char *path,
                       const char *field_prefix, char *err, size_t errlen);

/* ------------------------------------------------------------------ */
/* Loading (model_load.c)                                               */

enum model_load {
	MODEL_LOAD_DEFAULT = 0,      /* flexpage for images, resident for checkpoints */
	MODEL_LOAD_RESIDENT,         /* read every byte into anonymous memory */
	MODEL_LOAD_MMAP,             /* map the file (raw images, checkpoints) */
	MODEL_LOAD_FLEXPAGE,         /* fp_open: pages served on demand */
};

enum model_format {
	MODEL_FORMAT_IMAGE = 1,
	MODEL_FORMAT_LLAMA2C,
};

struct model_options {
	int load;                    /* enum model_load */
	int advice;                  /* madvise() advice for mmap; 0: MADV_NORMAL */
	struct fp_options fp;        /* for MODEL_LOAD_FLEXPAGE */
};

struct model {
	char path[4096];
	int format;                  /* enum model_format */
	int load;                    /* enum model_load, resolved */
	struct frt_config cfg;
	int shared_classifier;
	struct frt_weights weights;  /* pointers into the memory below */
	struct frt_layer *layers;
	uint64_t size;               /* bytes that hold the weights (image: logical size) */
	fp_region *region;           /* MODEL_LOAD_FLEXPAGE */
	void *map;                   /* MODEL_LOAD_MMAP */
	size_t map_len;
	void *buf;                   /* MODEL_LOAD_RESIDENT */
	size_t buf_len;
};

/* "resident", "mmap", "flexpage" -> enum model_load; -1 if unknown. */
int model_load_parse(const char *name);
const char *model_load_name(int load);
/* Format of the file: MODEL_FORMAT_*, or -1 with a message. */
int model_detect(const char *path, char *err, size_t errlen);

/* Open path and point m->weights at its tensors, checking every tensor's
 * presence, type and shape against the configuration.  -1 with a message
 * naming the file and the field. */
int model_open(struct model *m, const char *path, const struct model_options *o,
               char *err, size_t errlen);
void model_close(struct model *m);

#endif
