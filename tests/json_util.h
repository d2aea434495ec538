/* A small JSON parser, for checking what the tools write (strict: what
 * RFC 8259 allows and nothing else; tests/test_trace_tool_json.c). */
#ifndef FLEXPAGE_JSON_UTIL_H
#define FLEXPAGE_JSON_UTIL_H

#include <stddef.h>

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
	enum jtype type;
	double num;
	char *str;               /* J_STR */
	struct jval **items;     /* J_ARR, J_OBJ values */
	char **keys;             /* J_OBJ */
	size_t n;
};

/* Parse text[0..len); NULL with the reason in err if it is not JSON. */
struct jval *json_parse(const char *text, size_t len, char *err, size_t errlen);
void jfree(struct jval *v);
/* Object o's member key, or NULL; its string ("" if none); its number (-1). */
const struct jval *jget(const struct jval *o, const char *key);
const char *jstr(const struct jval *o, const char *key);
double jnum(const struct jval *o, const char *key);

#endif
