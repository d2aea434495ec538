/* A small JSON parser (json_util.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

struct jparser {
	const char *start, *p, *end;
	char err[128];
};

void jfree(struct jval *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++) {
		jfree(v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
	free(v);
}

static void ws(struct jparser *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int fail(struct jparser *j, const char *what)
{
	if (!j->err[0])
		snprintf(j->err, sizeof j->err, "%s at byte %td", what, j->p - j->start);
	return -1;
}

static int hex4(struct jparser *j, unsigned *out)
{
	*out = 0;
	for (int i = 0; i < 4; i++, j->p++) {
		char c = j->p < j->end ? *j->p : 0;
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
		           : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
		           : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 99;
		if (d == 99)
			return fail(j, "bad \\u escape");
		*out = *out * 16 + d;
	}
	return 0;
}

static char *jstring(struct jparser *j)
{
	if (j->p >= j->end || *j->p != '"') {
		fail(j, "expected a string");
		return NULL;
	}
	j->p++;
	size_t cap = 32, n = 0;
	char *s = malloc(cap);
	for (;;) {
		if (j->p >= j->end) {
			fail(j, "unterminated string");
			free(s);
			return NULL;
		}
		unsigned char c = (unsigned char)*j->p++;
		if (n + 5 >= cap)
			s = realloc(s, cap *= 2);
		if (c == '"')
			break;
		if (c < 0x20) {
			fail(j, "control character in a string");
			free(s);
			return NULL;
		}
		if (c != '\\') {
			s[n++] = (char)c;
			continue;
		}
		c = j->p < j->end ? (unsigned char)*j->p++ : 0;
		const char *simple = strchr("\"\\/bfnrt", c);
		if (c && simple) {
			s[n++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
			continue;
		}
		if (c != 'u') {
			fail(j, "bad escape");
			free(s);
			return NULL;
		}
		unsigned u;
		if (hex4(j, &u)) {
			free(s);
			return NULL;
		}
		if (u >= 0xd800 && u < 0xdc00) {
			unsigned lo;
			if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') {
				fail(j, "lone surrogate");
				free(s);
				return NULL;
			}
			j->p += 2;
			if (hex4(j, &lo) || lo < 0xdc00 || lo > 0xdfff) {
				fail(j, "bad surrogate pair");
				free(s);
				return NULL;
			}
			u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
		} else if (u >= 0xdc00 && u < 0xe000) {
			fail(j, "lone surrogate");
			free(s);
			return NULL;
		}
		/* UTF-8 encode (the tests only compare ASCII). */
		if (u < 0x80) {
			s[n++] = (char)u;
		} else if (u < 0x800) {
			s[n++] = (char)(0xc0 | u >> 6);
			s[n++] = (char)(0x80 | (u & 0x3f));
		} else if (u < 0x10000) {
			s[n++] = (char)(0xe0 | u >> 12);
			s[n++] = (char)(0x80 | ((u >> 6) & 0x3f));
			s[n++] = (char)(0x80 | (u & 0x3f));
		} else {
			s[n++] = (char)(0xf0 | u >> 18);
			s[n++] = (char)(0x80 | ((u >> 12) & 0x3f));
			s[n++] = (char)(0x80 | ((u >> 6) & 0x3f));
			s[n++] = (char)(0x80 | (u & 0x3f));
		}
	}
	s[n] = 0;
	return s;
}

static int digits(struct jparser *j)
{
	const char *s = j->p;
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	return j->p > s ? 0 : fail(j, "expected digits");
}

static struct jval *jvalue(struct jparser *j, int depth);

static struct jval *jnew(enum jtype t)
{
	struct jval *v = calloc(1, sizeof *v);
	v->type = t;
	return v;
}

static int jpush(struct jval *v, char *key, struct jval *item, size_t *cap)
{
	if (v->n == *cap) {
		*cap = *cap ? 2 * *cap : 8;
		v->items = realloc(v->items, *cap * sizeof *v->items);
		if (v->type == J_OBJ)
			v->keys = realloc(v->keys, *cap * sizeof *v->keys);
	}
	v->items[v->n] = item;
	if (v->type == J_OBJ)
		v->keys[v->n] = key;
	v->n++;
	return 0;
}

static struct jval *jcontainer(struct jparser *j, int depth, int obj)
{
	struct jval *v = jnew(obj ? J_OBJ : J_ARR);
	size_t cap = 0;
	j->p++;
	ws(j);
	if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
		j->p++;
		return v;
	}
	for (;;) {
		char *key = NULL;
		ws(j);
		if (obj) {
			if (!(key = jstring(j)))
				goto bad;
			ws(j);
			if (j->p >= j->end || *j->p != ':') {
				free(key);
				fail(j, "expected ':'");
				goto bad;
			}
			j->p++;
		}
		struct jval *item = jvalue(j, depth + 1);
		if (!item) {
			free(key);
			goto bad;
		}
		jpush(v, key, item, &cap);
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
			j->p++;
			return v;
		}
		fail(j, obj ? "expected ',' or '}'" : "expected ',' or ']'");
		goto bad;
	}
bad:
	jfree(v);
	return NULL;
}

static struct jval *jvalue(struct jparser *j, int depth)
{
	ws(j);
	if (depth > 64) {
		fail(j, "nested too deep");
		return NULL;
	}
	if (j->p >= j->end) {
		fail(j, "unexpected end");
		return NULL;
	}
	char c = *j->p;
	if (c == '{' || c == '[')
		return jcontainer(j, depth, c == '{');
	if (c == '"') {
		char *s = jstring(j);
		if (!s)
			return NULL;
		struct jval *v = jnew(J_STR);
		v->str = s;
		return v;
	}
	static const struct {
		const char *word;
		enum jtype t;
		double num;
	} lit[] = {{"true", J_BOOL, 1}, {"false", J_BOOL, 0}, {"null", J_NULL, 0}};
	for (int i = 0; i < 3; i++) {
		size_t l = strlen(lit[i].word);
		if ((size_t)(j->end - j->p) >= l && !strncmp(j->p, lit[i].word, l)) {
			j->p += l;
			struct jval *v = jnew(lit[i].t);
			v->num = lit[i].num;
			return v;
		}
	}
	/* number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
	const char *start = j->p;
	if (*j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (digits(j))
		return NULL;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (digits(j))
			return NULL;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (digits(j))
			return NULL;
	}
	struct jval *v = jnew(J_NUM);
	v->num = strtod(start, NULL);
	return v;
}

struct jval *json_parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct jparser j = {.start = text, .p = text, .end = text + len};
	struct jval *v = jvalue(&j, 0);
	if (v) {
		ws(&j);
		if (j.p != j.end) {
			fail(&j, "trailing characters");
			jfree(v);
			v = NULL;
		}
	}
	if (!v)
		snprintf(err, errlen, "%s", j.err);
	return v;
}

const struct jval *jget(const struct jval *o, const char *key)
{
	if (!o || o->type != J_OBJ)
		return NULL;
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->keys[i], key))
			return o->items[i];
	return NULL;
}

const char *jstr(const struct jval *o, const char *key)
{
	const struct jval *v = jget(o, key);
	return v && v->type == J_STR ? v->str : "";
}

double jnum(const struct jval *o, const char *key)
{
	const struct jval *v = jget(o, key);
	return v && v->type == J_NUM ? v->num : -1;
}
