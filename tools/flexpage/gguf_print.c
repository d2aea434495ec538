/* Printing a GGUF header for flexpage inspect: every key with its type and
 * value (arrays summarised: element type, count, the first few values),
 * and the tensor infos. */
#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "util.h"

#define ARRAY_SHOWN 4        /* values shown of an array */
#define STRING_SHOWN 48      /* bytes shown of a string value */

/* A string quoted, control bytes escaped, cut at max bytes. */
static void print_string(FILE *f, const char *s, uint64_t len, uint64_t max)
{
	fputc('"', f);
	for (uint64_t i = 0; i < len && i < max; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
	fputs(len > max ? "\"..." : "\"", f);
}

/* An array element of a fixed-size type at p (little-endian, as GGUF
 * stores it). */
static void print_number(FILE *f, int type, const void *p)
{
	union {
		uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
		float f32; uint64_t u64; int64_t i64; double f64;
	} v;
	memcpy(&v, p, fp_gguf_type_size(type));
	switch (type) {
	case FP_GGUF_UINT8: fprintf(f, "%u", v.u8); break;
	case FP_GGUF_INT8: fprintf(f, "%d", v.i8); break;
	case FP_GGUF_UINT16: fprintf(f, "%u", v.u16); break;
	case FP_GGUF_INT16: fprintf(f, "%d", v.i16); break;
	case FP_GGUF_UINT32: fprintf(f, "%u", v.u32); break;
	case FP_GGUF_INT32: fprintf(f, "%d", v.i32); break;
	case FP_GGUF_FLOAT32: fprintf(f, "%g", v.f32); break;
	case FP_GGUF_BOOL: fputs(v.u8 ? "true" : "false", f); break;
	case FP_GGUF_UINT64: fprintf(f, "%llu", (unsigned long long)v.u64); break;
	case FP_GGUF_INT64: fprintf(f, "%lld", (long long)v.i64); break;
	case FP_GGUF_FLOAT64: fprintf(f, "%g", v.f64); break;
	}
}

static void print_scalar(FILE *f, const fp_gguf *g, const char *key, int type)
{
	uint64_t u;
	int64_t i;
	double d;
	int b;
	if (type == FP_GGUF_BOOL && !fp_gguf_get_bool(g, key, &b))
		fputs(b ? "true" : "false", f);
	else if (type == FP_GGUF_FLOAT32 || type == FP_GGUF_FLOAT64)
		fprintf(f, "%g", fp_gguf_get_f64(g, key, &d) ? 0.0 : d);
	else if (!fp_gguf_get_u64(g, key, &u))
		fprintf(f, "%llu", (unsigned long long)u);
	else if (!fp_gguf_get_i64(g, key, &i))
		fprintf(f, "%lld", (long long)i);
}

static void print_array(FILE *f, const fp_gguf *g, const char *key)
{
	int et;
	uint64_t n;
	const void *data;
	fp_gguf_get_arr(g, key, &et, &n, &data);
	fprintf(f, "%llu", (unsigned long long)n);
	if (et == FP_GGUF_ARRAY)
		return;
	for (uint64_t i = 0; i < n && i < ARRAY_SHOWN; i++) {
		fputs(i ? ", " : ": ", f);
		if (et == FP_GGUF_STRING) {
			const char *s;
			uint64_t len;
			fp_gguf_arr_str(g, key, i, &s, &len);
			print_string(f, s, len, 16);
		} else {
			print_number(f, et, (const char *)data + i * fp_gguf_type_size(et));
		}
	}
	if (n > ARRAY_SHOWN)
		fputs(", ...", f);
}

void print_gguf_meta(FILE *f, const fp_gguf *g)
{
	fprintf(f, "\nmetadata (%llu keys)\n", (unsigned long long)fp_gguf_n_kv(g));
	for (uint64_t i = 0; i < fp_gguf_n_kv(g); i++) {
		const char *key = fp_gguf_key(g, i);
		int type = fp_gguf_type(g, i);
		fprintf(f, "  %-40s ", key);
		if (type == FP_GGUF_ARRAY) {
			int et;
			fp_gguf_get_arr(g, key, &et, NULL, NULL);
			char t[16];
			snprintf(t, sizeof t, "arr[%s]", fp_gguf_type_name(et));
			fprintf(f, "%-9s", t);
			print_array(f, g, key);
		} else if (type == FP_GGUF_STRING) {
			const char *s;
			uint64_t len;
			fp_gguf_get_str(g, key, &s, &len);
			fprintf(f, "%-9s", "str");
			print_string(f, s, len, STRING_SHOWN);
		} else {
			fprintf(f, "%-9s", fp_gguf_type_name(type));
			print_scalar(f, g, key, type);
		}
		fputc('\n', f);
	}
}

void print_gguf_tensors(FILE *f, const fp_gguf *g)
{
	char sh[96], b[32];
	fprintf(f, "\n%-32s %-7s %-20s %12s %10s\n", "tensor", "type", "shape", "offset", "bytes");
	for (uint64_t i = 0; i < fp_gguf_n_tensors(g); i++) {
		const struct fp_gguf_tensor *t = fp_gguf_tensor(g, i);
		sh[0] = 0;
		for (uint32_t d = 0; d < t->n_dims; d++)
			snprintf(sh + strlen(sh), sizeof sh - strlen(sh), "%s%llu", d ? "x" : "",
			         (unsigned long long)t->ne[d]);
		fprintf(f, "%-32s %-7s %-20s %12llu %10s\n", t->name, fp_ggml_type_name(t->type),
		        t->n_dims ? sh : "scalar", (unsigned long long)t->offset,
		        fmt_bytes(t->size, b, sizeof b));
	}
}
