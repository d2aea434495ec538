/* The library's exported symbols: every fp_ one is declared in a public
 * header (<flexpage/flexpage.h>, <flexpage/flexpage_experimental.h> or
 * <flexpage/version.h>),
 * every other one is internal and named pg_, so that internal symbols
 * never share the public prefix.  Read with nm(1) from the built library. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* Whether name( is declared in one of the headers' texts. */
static int declared(const char *const *texts, const char *name)
{
	size_t n = strlen(name);
	for (int h = 0; texts[h]; h++)
		for (const char *p = strstr(texts[h], name); p; p = strstr(p + 1, name))
			if ((p == texts[h] || !(isalnum((unsigned char)p[-1]) || p[-1] == '_')) && p[n] == '(')
				return 1;
	return 0;
}

Test(symbols, public_prefix_only_for_the_public_api)
{
	if (system("command -v nm >/dev/null 2>&1"))
		cr_skip_test("nm (binutils) is not installed");
	size_t len;
	const char *texts[4] = {
		tu_read_file(FLEXPAGE_INCLUDE "/flexpage/flexpage.h", &len),
		tu_read_file(FLEXPAGE_INCLUDE "/flexpage/flexpage_experimental.h", &len),
		/* generated from version.h.in at configure time */
		tu_read_file(FLEXPAGE_GENERATED_INCLUDE "/flexpage/version.h", &len),
		NULL,
	};
	cr_assert(texts[0] && texts[1] && texts[2], "cannot read the headers under %s and %s",
	          FLEXPAGE_INCLUDE, FLEXPAGE_GENERATED_INCLUDE);
	FILE *nm = popen("nm -g --defined-only '" FLEXPAGE_PAGER_LIB "'", "r");
	cr_assert_not_null(nm);
	char line[512], sym[256], type;
	int public = 0, internal = 0;
	while (fgets(line, sizeof line, nm)) {
		/* "ADDRESS T name": member names ("x.c.o:") and blank lines are not */
		size_t hex = strspn(line, "0123456789abcdef");
		if (hex < 8 || line[hex] != ' ' || sscanf(line + hex, " %c %255s", &type, sym) != 2)
			continue;
		if (!strncmp(sym, "__", 2))
			continue; /* the compiler's own (__odr_asan.* under ASan) */
		if (!strncmp(sym, "fp_", 3)) {
			cr_expect(declared(texts, sym), "%s is exported but declared in no public header", sym);
			public++;
		} else {
			cr_expect(!strncmp(sym, "pg_", 3), "%s: an internal symbol not named pg_*", sym);
			internal++;
		}
	}
	cr_assert_eq(pclose(nm), 0, "nm failed on %s", FLEXPAGE_PAGER_LIB);
	cr_expect_gt(public, 40, "only %d public symbols read: is this the library?", public);
	cr_expect_gt(internal, 0);
	free((void *)texts[0]);
	free((void *)texts[1]);
}
