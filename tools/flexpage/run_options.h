/* What the commands that run a model (`flexpage run`, `flexpage
 * perplexity`) share: the options for compute threads, kernels and how
 * the weights are loaded (run_options.c), the report of what the load
 * cost, and finding the model's tokenizer (tokenizer_find.c). */
#ifndef FLEXPAGE_TOOL_RUN_OPTIONS_H
#define FLEXPAGE_TOOL_RUN_OPTIONS_H

#include <getopt.h>
#include <stdio.h>

#include <flexrt/runtime.h>

#include <flexmodel/model.h>
#include "run_paging.h"

struct run_options {
	int threads;
	int no_repack;               /* --no-repack */
	const char *budget_arg;
	struct model_options mo;
	struct run_paging paging;
};

/* The getopt_long entries of the shared options, for the command's table;
 * their short codes are t K L M b l y r B H R A W U G D X i, and 0x100 up
 * for long options alone. */
enum {
	RUN_OPT_CHUNK = 0x100, RUN_OPT_READ_RATE, RUN_OPT_DECODE_RATE, RUN_OPT_DECODERS,
	RUN_OPT_NO_REPACK
};
#define RUN_OPTIONS_LONGOPTS                                                        \
	{"threads", required_argument, 0, 't'}, {"kernels", required_argument, 0, 'K'},   \
	{"load", required_argument, 0, 'L'}, {"madvise", required_argument, 0, 'M'},       \
	{"budget", required_argument, 0, 'b'}, {"loaders", required_argument, 0, 'l'},     \
	{"policy", required_argument, 0, 'y'}, {"readahead", required_argument, 0, 'r'},   \
	{"buffered", no_argument, 0, 'B'}, {"no-huge", no_argument, 0, 'H'},               \
	{"preserve", required_argument, 0, 'R'}, {"attention-first", no_argument, 0, 'A'}, \
	{"stream", required_argument, 0, 'W'}, {"no-lock", no_argument, 0, 'U'},           \
	{"no-stage", no_argument, 0, 'G'}, {"no-predict", no_argument, 0, 'D'},            \
	{"trace", required_argument, 0, 'X'}, {"stats-interval", required_argument, 0, 'i'}, \
	{"chunk", required_argument, 0, RUN_OPT_CHUNK},                                     \
	{"read-rate", required_argument, 0, RUN_OPT_READ_RATE},                             \
	{"decode-rate", required_argument, 0, RUN_OPT_DECODE_RATE},                         \
	{"decoders", required_argument, 0, RUN_OPT_DECODERS},                               \
	{"no-repack", no_argument, 0, RUN_OPT_NO_REPACK}

/* Defaults: the CPUs online, the format's load, the pager's settings. */
void run_options_init(struct run_options *o);
/* The shared options' lines for --help. */
void run_options_usage(FILE *f);
/* Take getopt's option code and argument: 1 if it was a shared option,
 * 0 if not; -2 for a bad value (usage error) and -1 for a failure (the
 * CPU lacks the kernels), each with the message in err. */
int run_options_parse(struct run_options *o, int code, const char *arg, char *err, size_t errlen);

/* Open the model at path as the options say: the load its format calls
 * for unless --load says, the budget, the preservation plan.  0, -2 for
 * an option that does not apply (usage error) or -1, the message in err. */
int run_options_open(struct run_options *o, const char *path, struct model *m,
                     char *err, size_t errlen);
/* After frt_model_create on m: for a resident load (and unless
 * --no-repack), the runtime's repacked layout of the q4_0 matrices
 * (frt_model_repack_in_place: over the resident copy m owns, which holds
 * the repacked layout from then on), which decodes faster; paged and
 * mapped weights keep the file's layout.  0, or -1 with the message in err. */
int run_options_prepare(const struct run_options *o, const struct model *m, frt_model *rt,
                        char *err, size_t errlen);
/* "model: PATH (image, q8_0, 1.10 GiB), load flexpage, kernels avx2, 2 threads". */
void run_options_describe(const struct run_options *o, const struct model *m, FILE *f);
/* What the process read from storage, its faults and peak RSS, and for a
 * paged load the pager's statistics. */
void run_options_report(const struct model *m, FILE *f);
/* Free what parsing and opening kept (the plan); the model is closed by
 * model_close. */
void run_options_free(struct run_options *o);

/* The tokenizer of a model of vocab tokens at model_path: the file given
 * (explicit), else tok<vocab>.bin, else tokenizer.bin in the model's
 * directory.  0 with *tok set when one loads; 0 with *tok NULL and the
 * reason in note when none is found beside the model (a file that does
 * not fit is skipped, and note says why); -1 with the message in err
 * when the explicit file does not load. */
int tokenizer_find(const char *model_path, const char *explicit_path, int vocab,
                   frt_tokenizer **tok, char *note, size_t notelen, char *err, size_t errlen);

#endif
