/* The flexpage command's subcommands, one file each. */
#ifndef FLEXPAGE_TOOL_CMDS_H
#define FLEXPAGE_TOOL_CMDS_H

#include <stdio.h>

#include <flexpage/flexpage_experimental.h>

int cmd_pack(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_sim(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_prune(int argc, char **argv);

/* The budget a plan keeps for streaming, in chunks, unless --stream says:
 * enough for read-ahead to keep several reads in flight beside the chunks
 * the loop is on. */
#define PLAN_STREAM_CHUNKS 16

/* Parse --stream (a size, or a per cent of budget) into *out.  A value
 * under one chunk is refused: it is almost always a size written without
 * its unit ("32" for 32M), and would leave the loop two chunks to thrash
 * in.  Returns 0, or -1 with the message in err. */
int parse_stream(const char *s, uint64_t budget, uint32_t chunk_size, uint64_t *out,
                 char *err, size_t errlen);

/* Tensor t's bytes in chunk k of a layout of chunk_size chunks: a chunk
 * may hold the end of one tensor and the start of the next (cmd_inspect.c).
 * Iterate k from t->offset / chunk_size while k * chunk_size < t's end. */
uint64_t tensor_bytes_in_chunk(const struct fp_tensor_desc *t, uint64_t k, uint32_t chunk_size);

/* A GGUF header for flexpage inspect (gguf_print.c): every key with its
 * type and value, arrays summarised; and the tensor infos. */
void print_gguf_meta(FILE *f, const fp_gguf *g);
void print_gguf_tensors(FILE *f, const fp_gguf *g);

/* Packing a file byte for byte (pack_verbatim.c). */
/* Into a verbatim writer: IN's bytes, and a tensor table of a GGUF's
 * tensor infos, a llama2.c checkpoint's tensors, or one opaque tensor. */
int pack_verbatim(const char *in, fp_writer *w, char *err, size_t errlen);
/* Open IN for packing: its descriptor and (non-zero) size, or -1 with a
 * message in err. */
int pack_open_input(const char *in, uint64_t *size, char *err, size_t errlen);
/* Copy size bytes from fd (named in) into w.  -1 with a message in err. */
int pack_file_bytes(int fd, const char *in, uint64_t size, fp_writer *w, char *err,
                    size_t errlen);

/* Compression-aware quantization of the model IN into the image OUT
 * (pack_compress.c): finds the calibration tokenizer (tokenizer, or one
 * beside IN), writes, prints the summary.  The exit status. */
/* The summary line of the image OUT just written; the exit status. */
int pack_report(const char *out);
struct model_compress_options;
struct fp_writer_options;
int pack_compress(const char *in, const char *out, struct model_compress_options *co,
                  const char *tokenizer, const struct fp_writer_options *wo, int quiet);

#endif
