/* Quantization to q8_0 and q4_0 blocks (GGML's layout, which the kernels
 * run unchanged) on a grid chosen for an entropy coder: q8_0 values kept
 * within |q| <= qmax (a coarser step, fewer distinct values), and a dead
 * zone that sends to 0 every weight whose magnitude, in the re-scaled
 * model, is below deadzone steps.  In the re-scaled model |w'| = |w| s_j
 * with s_j proportional to the channel's activation RMS, so the dead zone
 * prunes exactly the weights of small |w| x ||x||.  With qmax 127 and
 * deadzone 0.5 the blocks are GGML's reference quantizer's. */
#include <math.h>
#include <string.h>

#include <flexkern/kernels.h>

#include "fmodel.h"

/* step > 0: one step for every block, raised only where a block's
 * largest value would not fit in an int8 (then GGML's amax / 127). */
/* d as fp16 with only the top mbits of its mantissa, rounded up (so no
 * value exceeds its grid): a block's scale then takes one of 2^mbits
 * values an octave, which an entropy coder stores in a few bits. */
static uint16_t coarse_fp16(float d, int mbits)
{
	uint16_t h = fk_fp32_to_fp16(d);
	if (mbits >= 10 || !(h & 0x7c00))
		return h; /* subnormal scales are a linear grid already */
	if (fk_fp16_to_fp32(h) < d)
		h++;
	const uint16_t low = (uint16_t)((1u << (10 - mbits)) - 1);
	if (h & low)
		h = (uint16_t)((h | low) + 1); /* up to the next grid value; carries into the exponent */
	return h;
}

static void q8_block(const float *x, fk_block_q8_0 *y, int qmax, float step, double dz,
                     int mbits)
{
	float amax = 0;
	for (int j = 0; j < FK_QK; j++)
		amax = fmaxf(amax, fabsf(x[j]));
	float d = amax / (float)qmax;
	if (step > 0)
		d = fmaxf(step, amax / 127.0f);
	y->d = coarse_fp16(d, mbits);
	/* quantize against the step the kernels will use */
	const float ds = fk_fp16_to_fp32(y->d), id = ds ? 1.0f / ds : 0.0f;
	for (int j = 0; j < FK_QK; j++) {
		const float v = x[j] * id;
		float q = fabsf(v) < dz ? 0.0f : roundf(v);
		y->qs[j] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
	}
}

static void q4_block(const float *x, fk_block_q4_0 *y, double dz)
{
	float amax = 0, max = 0;
	for (int j = 0; j < FK_QK; j++)
		if (fabsf(x[j]) > amax) {
			amax = fabsf(x[j]);
			max = x[j];
		}
	const float d = max / -8, id = d ? 1.0f / d : 0.0f;
	y->d = fk_fp32_to_fp16(d);
	for (int j = 0; j < FK_QK / 2; j++) {
		uint8_t nib[2];
		for (int h = 0; h < 2; h++) {
			const float v = x[j + h * FK_QK / 2] * id;
			const int n = fabsf(v) < dz ? 8 : (int)(v + 8.5f);
			nib[h] = (uint8_t)(n > 15 ? 15 : n < 0 ? 0 : n);
		}
		y->qs[j] = (uint8_t)(nib[0] | nib[1] << 4);
	}
}

void cquant_matrix(int type, const struct cquant_params *p, const float *w, uint64_t rows,
                   uint64_t cols, void *out)
{
	const int ref = p->qmax == 127 && p->deadzone <= 0.5 && p->step <= 0 && p->scale_bits >= 10;
	const size_t rb = fk_row_bytes(type, (size_t)cols);
	float step = 0;
	if (p->step > 0) {
		double ss = 0;
		for (uint64_t i = 0; i < rows * cols; i++)
			ss += (double)w[i] * w[i];
		step = (float)(p->step * sqrt(ss / (double)(rows * cols)));
	}
	for (uint64_t r = 0; r < rows; r++) {
		const float *x = w + r * cols;
		char *dst = (char *)out + r * rb;
		if (ref && type == FK_Q8_0) {
			fk_quantize_row_q8_0(x, (fk_block_q8_0 *)dst, (size_t)cols);
		} else if (ref && type == FK_Q4_0) {
			fk_quantize_row_q4_0(x, (fk_block_q4_0 *)dst, (size_t)cols);
		} else {
			for (uint64_t b = 0; b < cols / FK_QK; b++) {
				if (type == FK_Q8_0)
					q8_block(x + b * FK_QK, (fk_block_q8_0 *)dst + b, p->qmax, step, p->deadzone,
				         p->scale_bits);
				else
					q4_block(x + b * FK_QK, (fk_block_q4_0 *)dst + b, p->deadzone);
			}
		}
	}
}

double cquant_entropy(int type, const void *q, uint64_t rows, uint64_t cols)
{
	double hist[256] = {0};
	const uint64_t blocks = rows * cols / FK_QK;
	for (uint64_t b = 0; b < blocks; b++) {
		if (type == FK_Q8_0) {
			const fk_block_q8_0 *y = (const fk_block_q8_0 *)q + b;
			for (int j = 0; j < FK_QK; j++)
				hist[(uint8_t)y->qs[j]]++;
		} else {
			const fk_block_q4_0 *y = (const fk_block_q4_0 *)q + b;
			for (int j = 0; j < FK_QK / 2; j++) {
				hist[y->qs[j] & 15]++;
				hist[y->qs[j] >> 4]++;
			}
		}
	}
	const double n = (double)(blocks * FK_QK);
	double h = 0;
	for (int i = 0; i < 256; i++)
		if (hist[i])
			h -= hist[i] / n * log2(hist[i] / n);
	return h;
}

double cquant_error(int type, const void *q, const float *w, uint64_t rows, uint64_t cols,
                    const double *ms)
{
	const size_t rb = fk_row_bytes(type, (size_t)cols);
	float row[4096];
	double num = 0, den = 0;
	for (uint64_t r = 0; r < rows; r++) {
		for (uint64_t c0 = 0; c0 < cols; c0 += sizeof row / sizeof row[0]) {
			const uint64_t n = cols - c0 < sizeof row / sizeof row[0] ? cols - c0
			                                                          : sizeof row / sizeof row[0];
			fk_dequantize_row(type, (const char *)q + r * rb + c0 / FK_QK * fk_row_bytes(type, FK_QK),
			                  row, (size_t)n);
			for (uint64_t j = 0; j < n; j++) {
				const double m = ms ? ms[c0 + j] : 1.0, x = w[r * cols + c0 + j];
				num += m * (row[j] - x) * (row[j] - x);
				den += m * x * x;
			}
		}
	}
	return den > 0 ? num / den : 0;
}
