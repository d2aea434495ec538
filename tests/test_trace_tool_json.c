/* The JSON parser the Chrome trace checks rely on: it accepts JSON and
 * refuses what is not. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <flexpage/flexpage_experimental.h>


#include "json_util.h"
#include "trace_tool_util.h"

Test(json_parser, accepts_json_and_refuses_what_is_not, .timeout = 10)
{
	const char *good[] = {"{}", "[]", " [1, -2.5e3, \"a\\u00e9\\ud83d\\ude00\", true, null] ",
	                      "{\"a\":{\"b\":[0.5]}}", "0"};
	const char *bad[] = {"{", "[1,]", "{\"a\" 1}", "01", "\"\\x\"", "[1] 2", "\"a\nb\"",
	                     "{'a':1}", "[\"\\ud800\"]", "1.", "-", "tru"};
	char err[128];
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		struct jval *v = json_parse(good[i], strlen(good[i]), err, sizeof err);
		cr_expect_not_null(v, "%s: %s", good[i], err);
		jfree(v);
	}
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct jval *v = json_parse(bad[i], strlen(bad[i]), err, sizeof err);
		cr_expect_null(v, "accepted %s", bad[i]);
		jfree(v);
	}
}
