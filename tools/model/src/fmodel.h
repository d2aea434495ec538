/* Internal to flexmodel: a Llama model held whole in float, the form in
 * which compression-aware quantization calibrates, re-scales and
 * quantizes it (fmodel.c, calib.c, rescale.c, cquant.c, compress.c). */
#ifndef FLEXMODEL_FMODEL_H
#define FLEXMODEL_FMODEL_H

#include "internal.h"

struct fmodel {
	struct frt_config cfg;
	int shared_classifier;
	int n;                       /* tensors, in decode order */
	struct llama_tensor *t;      /* [n] */
	float **w;                   /* [n] rows x cols floats each */
};

/* Every tensor of the model at path (a llama2.c checkpoint, a GGUF or an
 * image with f32 or f16 tensors) as floats.  -EINVAL naming a tensor of a
 * type that is not re-quantized (q8_0, q4_0: quantizing again would add
 * the first rounding to the second). */
int fmodel_load(struct fmodel *fm, const char *path);
int fmodel_copy(struct fmodel *dst, const struct fmodel *src);
void fmodel_free(struct fmodel *fm);
/* The index of the tensor of role in layer (-1 for the global ones), or -1. */
int fmodel_find(const struct fmodel *fm, int role, int layer);
/* Point weights/layers (n_layers of them) at fm's floats, every matrix f32. */
void fmodel_weights(const struct fmodel *fm, struct frt_weights *w, struct frt_layer *layers);

/* Per-channel activation statistics: the mean square of each input
 * channel of each matrix group over the calibration tokens. */
struct calib_stats {
	int tokens;
	double *attn_in;             /* [n_layers][dim]: input of wq, wk, wv */
	double *wo_in;               /* [n_layers][dim]: attention output, input of wo */
	double *ffn_in;              /* [n_layers][dim]: input of w1, w3 */
	double *w2_in;               /* [n_layers][hidden]: silu(w1 x) * w3 x */
	double *out_in;              /* [dim]: input of the classifier */
};

/* Run fm over ids in windows of ctx positions (each window's first token
 * a BOS) and gather the statistics.  -ENOMEM or 0. */
int calib_collect(const struct fmodel *fm, const int *ids, int n_ids, int ctx, int threads,
                  struct calib_stats *s);
void calib_free(struct calib_stats *s);

#endif

/* Re-scale input channels (rescale.c): channel j of a matrix group is
 * multiplied by s_j = (a_j / G)^alpha, a_j its activations' RMS and G
 * their geometric mean, and the operation before divides by s_j (RMSNorm
 * weights for q/k/v and gate/up, V's rows for wo, up's rows for down, the
 * final norm for an unshared classifier), so the function is unchanged.
 * The statistics are updated to the re-scaled model's activations. */
void rescale_apply(struct fmodel *fm, struct calib_stats *s, double alpha);

/* How a matrix is quantized (cquant.c). */
struct cquant_params {
	double alpha;                /* re-scaling exponent; 0: none */
	int qmax;                    /* q8_0: |q| <= qmax (127: GGML's grid) */
	double step;                 /* q8_0: > 0, one step of step x the matrix's RMS for
	                              * every block (0: each block's own, amax / qmax) */
	int scale_bits;              /* q8_0: mantissa bits kept of each block's fp16 scale (10: all) */
	double deadzone;             /* |x| / step below it quantizes to 0 (0.5: rounding) */
};

/* Quantize rows x cols floats to type (FK_Q8_0 or FK_Q4_0) at out; the
 * reference quantizer of the kernels when p is GGML's grid. */
void cquant_matrix(int type, const struct cquant_params *p, const float *w, uint64_t rows,
                   uint64_t cols, void *out);
/* Order-0 entropy in bits per weight of a quantized matrix's values. */
double cquant_entropy(int type, const void *q, uint64_t rows, uint64_t cols);
/* sum_j ms_j sum_i (q_ij - w_ij)^2 / sum_j ms_j sum_i w_ij^2: the relative
 * output error of the matrix on activations of mean squares ms (NULL:
 * all 1), channels taken as uncorrelated. */
double cquant_error(int type, const void *q, const float *w, uint64_t rows, uint64_t cols,
                    const double *ms);
