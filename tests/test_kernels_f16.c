/* flexkern's f16 matrices: the type's bytes and names, the dequantizer
 * against an independent decoding of every half, every matrix-vector path
 * and thread count against this file's own statement of the canonical
 * arithmetic (docs/runtime.md: f32's sums over weights converted exactly),
 * against float64, and mixed with the other types in one batch. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <flexkern/kernels.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kern_util.h"

/* IEEE binary16 decoded from its fields with ldexp, sharing nothing with
 * the library: (-1)^s * 2^(e-15) * (1 + m/1024), subnormals 2^-14 * m/1024. */
static double half_value(uint16_t h)
{
	const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
	double v;
	if (e == 0)
		v = ldexp((double)m, -24);
	else if (e == 31)
		v = m ? NAN : INFINITY;
	else
		v = ldexp(1024.0 + m, e - 25);
	return s ? -v : v;
}

/* A half of a trained-looking weight, or, one time in 16, any finite bit
 * pattern (subnormals, the largest magnitudes, negative zero). */
static uint16_t random_half(float scale)
{
	if ((next_u64() & 15) == 0) {
		uint16_t h;
		do
			h = (uint16_t)next_u64();
		while ((h & 0x7c00) == 0x7c00);
		return (uint16_t)((h & 0x8000) | ((h & 0x7fff) % 0x5800)); /* |v| < 2^7 */
	}
	return fk_fp32_to_fp16(gauss() * scale);
}

struct mat16 {
	int n_in, n_out;
	uint16_t *w;
	float *x;
};

static struct mat16 make_mat16(int n_in, int n_out)
{
	struct mat16 m = {n_in, n_out, malloc(sizeof(uint16_t) * (size_t)n_in * (size_t)n_out),
	                  malloc(sizeof(float) * (size_t)n_in)};
	for (int r = 0; r < n_out; r++) {
		const float scale = 0.05f * (float)exp(0.5 * gauss());
		for (int i = 0; i < n_in; i++)
			m.w[(size_t)r * n_in + i] = random_half(scale);
	}
	for (int i = 0; i < n_in; i++)
		m.x[i] = gauss();
	return m;
}

static void free_mat16(struct mat16 *m)
{
	free(m->w);
	free(m->x);
}

/* The canonical arithmetic for f16: value j feeds sum j % 16 with
 * fma(w_j as float, x_j), then the 16 sums fold in halves. */
static float canonical_row(const struct mat16 *m, int r)
{
	float acc[16] = {0};
	const uint16_t *w = m->w + (size_t)r * m->n_in;
	for (int j = 0; j < m->n_in; j++)
		acc[j % 16] = fmaf((float)half_value(w[j]), m->x[j], acc[j % 16]);
	return fold16(acc);
}

Test(f16, type_name_and_row_bytes)
{
	cr_assert_eq(FK_F16, 1, "GGML's number for f16");
	cr_assert_str_eq(fk_type_name(FK_F16), "f16");
	cr_assert_eq(fk_type_parse("f16"), FK_F16);
	cr_assert_eq(fk_row_bytes(FK_F16, 7), 14, "f16 rows need no whole blocks");
	cr_assert_eq(fk_row_bytes(FK_F16, 2048), 4096);
}

Test(f16, dequantize_every_half)
{
	static uint16_t h[65536];
	static float f[65536];
	for (uint32_t i = 0; i < 65536; i++)
		h[i] = (uint16_t)i;
	fk_dequantize_row(FK_F16, h, f, 65536);
	for (uint32_t i = 0; i < 65536; i++) {
		const double want = half_value((uint16_t)i);
		if (isnan(want))
			cr_assert(isnan(f[i]), "half %04x is NaN, got %g", i, f[i]);
		else
			cr_assert(f[i] == want && !signbit(f[i]) == !signbit(want), "half %04x: %.9g, expected %.9g",
			          i, f[i], want);
	}
}

static void check_paths(int n_in, int n_out)
{
	struct mat16 m = make_mat16(n_in, n_out);
	float *want = malloc(sizeof(float) * (size_t)n_out);
	float *y = malloc(sizeof(float) * (size_t)n_out);
	for (int r = 0; r < n_out; r++)
		want[r] = canonical_row(&m, r);
	for (int t = 1; t <= 3; t++) {
		fk_pool *p = fk_pool_create(t);
		for (int i = 0; i < n_isas; i++) {
			cr_assert_eq(fk_set_isa(isas[i]), 0);
			memset(y, 0xff, sizeof(float) * (size_t)n_out);
			fk_matvec(p, y, m.w, FK_F16, m.x, n_in, n_out);
			for (int r = 0; r < n_out; r++)
				cr_assert_eq(bits(y[r]), bits(want[r]),
				             "f16 %dx%d %s, %d threads, row %d: %.9g, canonical %.9g", n_out, n_in,
				             fk_isa_name(isas[i]), t, r, y[r], want[r]);
		}
		fk_pool_destroy(p);
	}
	free(want);
	free(y);
	free_mat16(&m);
}

Test(f16, every_path_is_the_canonical_arithmetic, .init = find_isas)
{
	cr_log_info("paths on this CPU: %d (best %s)", n_isas, fk_isa_name(isas[n_isas - 1]));
	/* every tail length of the 16- and 8-lane loops */
	for (int n = 1; n <= 40; n++)
		check_paths(n, 3);
	check_paths(172, 9);
	check_paths(256, 64);
	/* enough rows that 2 and 3 threads share them out */
	check_paths(2048, 67);
	check_paths(64, 5000);
}

/* Against float64 over the same half weights, within the f32 bound
 * n * 2^-24 * sum |w x| (doubled for the fold); the conversion adds no
 * error of its own. */
Test(f16, close_to_float64, .init = find_isas)
{
	const int n_in = 2048, n_out = 96;
	struct mat16 m = make_mat16(n_in, n_out);
	float y[96];
	fk_set_isa(isas[n_isas - 1]);
	fk_matvec(NULL, y, m.w, FK_F16, m.x, n_in, n_out);
	double se = 0, sr = 0;
	for (int r = 0; r < n_out; r++) {
		double ref = 0, mag = 0;
		for (int j = 0; j < n_in; j++) {
			const double p = half_value(m.w[(size_t)r * n_in + j]) * m.x[j];
			ref += p;
			mag += fabs(p);
		}
		const double bound = 2.0 * n_in * 0x1p-24 * mag * 1.5, e = fabs(y[r] - ref);
		cr_assert(e <= bound, "row %d: %.9g vs %.9g, error %g > bound %g", r, y[r], ref, e, bound);
		se += e * e;
		sr += ref * ref;
	}
	const double rel = sqrt(se / sr);
	cr_log_info("f16: relative RMS error against float64 %.2e", rel);
	cr_assert(rel < 1e-6, "relative RMS error %g", rel);
	free_mat16(&m);
}

/* f16 products batched with q8_0 and f32 ones over the same x (as a GGUF
 * that mixes types makes them: q, k and v of different types) equal the
 * products run one by one, on any thread count. */
Test(f16, mixed_batch_equals_single_products, .init = find_isas)
{
	enum { N = 256 };
	struct mat16 a = make_mat16(N, 77), c = make_mat16(N, 40);
	fk_block_q8_0 *q = malloc(sizeof *q * (N / 32) * 13);
	float *f = malloc(sizeof(float) * N * 9), row[N];
	for (int r = 0; r < 13; r++) {
		for (int i = 0; i < N; i++)
			row[i] = gauss() * 0.05f;
		fk_quantize_row_q8_0(row, q + r * (N / 32), N);
	}
	for (int i = 0; i < N * 9; i++)
		f[i] = gauss() * 0.05f;
	float ya[77], yb[13], yc[40], yd[9], za[77], zb[13], zc[40], zd[9];
	for (int i = 0; i < n_isas; i++) {
		fk_set_isa(isas[i]);
		fk_matvec(NULL, za, a.w, FK_F16, a.x, N, 77);
		fk_matvec(NULL, zb, q, FK_Q8_0, a.x, N, 13);
		fk_matvec(NULL, zc, c.w, FK_F16, a.x, N, 40);
		fk_matvec(NULL, zd, f, FK_F32, a.x, N, 9);
		for (int t = 1; t <= 4; t++) {
			fk_pool *p = fk_pool_create(t);
			const struct fk_matvec jobs[4] = {
				{FK_F16, a.w, a.x, ya, N, 77},
				{FK_Q8_0, q, a.x, yb, N, 13},
				{FK_F16, c.w, a.x, yc, N, 40},
				{FK_F32, f, a.x, yd, N, 9},
			};
			fk_matvec_batch(p, jobs, 4);
			cr_assert(!memcmp(ya, za, sizeof za) && !memcmp(yb, zb, sizeof zb) &&
			          !memcmp(yc, zc, sizeof zc) && !memcmp(yd, zd, sizeof zd),
			          "%s: batch on %d threads differs", fk_isa_name(isas[i]), t);
			fk_pool_destroy(p);
		}
	}
	free(q);
	free(f);
	free_mat16(&a);
	free_mat16(&c);
}
