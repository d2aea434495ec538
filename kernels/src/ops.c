/* The vector operations around the products.  They touch a few thousand
 * floats per call, against millions of weights per product, so they are
 * plain C, the same on every path; sums that set a scale are kept in
 * double so that long vectors lose nothing. */
#include <flexkern/kernels.h>

#include <math.h>

void fk_rmsnorm(float *o, const float *x, const float *w, int n, float eps)
{
	double ss = 0.0;
	for (int i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	const float scale = (float)(1.0 / sqrt(ss / n + eps));
	for (int i = 0; i < n; i++)
		o[i] = w[i] * (scale * x[i]);
}

void fk_softmax(float *x, int n)
{
	if (n <= 0)
		return;
	float max = x[0];
	for (int i = 1; i < n; i++)
		if (x[i] > max)
			max = x[i];
	double sum = 0.0;
	for (int i = 0; i < n; i++) {
		x[i] = expf(x[i] - max);
		sum += x[i];
	}
	const float inv = (float)(1.0 / sum);
	for (int i = 0; i < n; i++)
		x[i] *= inv;
}

void fk_rope(float *x, int n_heads, int head_size, int pos, float theta)
{
	for (int i = 0; i < head_size; i += 2) {
		/* angle in double: pos * freq loses digits in float at long
		 * positions, and cos/sin are per pair, not per element */
		const double freq = pow((double)theta, -(double)i / head_size);
		const double a = pos * freq;
		const float c = (float)cos(a), s = (float)sin(a);
		for (int h = 0; h < n_heads; h++) {
			float *v = x + h * head_size + i;
			const float v0 = v[0], v1 = v[1];
			v[0] = v0 * c - v1 * s;
			v[1] = v0 * s + v1 * c;
		}
	}
}

void fk_silu(float *x, int n)
{
	for (int i = 0; i < n; i++)
		x[i] = x[i] / (1.0f + expf(-x[i]));
}

void fk_swiglu(float *gate, const float *up, int n)
{
	for (int i = 0; i < n; i++) {
		const float g = gate[i];
		gate[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

/* Eight running sums in a fixed order: the compiler turns the inner loop
 * into SIMD (lanes are independent), and the result is the same on every
 * CPU. */
float fk_dot_f32(const float *a, const float *b, int n)
{
	float acc[8] = {0};
	int i = 0;
	for (; i + 8 <= n; i += 8)
		for (int l = 0; l < 8; l++)
			acc[l] += a[i + l] * b[i + l];
	for (int l = 0; i < n; i++, l++)
		acc[l] += a[i] * b[i];
	return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

void fk_axpy(float *restrict y, float a, const float *restrict x, int n)
{
	int i = 0;
	for (; i + 8 <= n; i += 8)
		for (int l = 0; l < 8; l++)
			y[i + l] += a * x[i + l];
	for (; i < n; i++)
		y[i] += a * x[i];
}
