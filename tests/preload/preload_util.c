#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "preload_util.h"
#include "region_util.h"

extern char **environ;

const char *pu_peer(const char *key)
{
	static char *env;
	if (!env) {
		size_t n;
		char path[512];
		snprintf(path, sizeof path, "%s/tests/preload/peers.env", FLEXPAGE_BUILD_DIR);
		FILE *f = fopen(path, "r");
		cr_assert_not_null(f, "%s is missing: the set-up test preload_setup did not run", path);
		env = calloc(1, 1 << 16);
		n = fread(env, 1, (1 << 16) - 1, f);
		env[n] = 0;
		fclose(f);
	}
	size_t k = strlen(key);
	for (char *line = env; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : line + strlen(line))
		if (!strncmp(line, key, k) && line[k] == '=') {
			static char vals[16][1024];
			static int next;
			char *v = vals[next++ % 16];
			size_t len = strcspn(line + k + 1, "\n");
			snprintf(v, sizeof vals[0], "%.*s", (int)len, line + k + 1);
			return v;
		}
	cr_assert_fail("peers.env has no %s", key);
	return NULL;
}

const char *pu_probe(void)
{
	return FLEXPAGE_PROBE;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void child(const char *const *argv, const struct pu_opts *o, const char *cg, int out, int err)
{
	if (cg && ru_cgroup_join(cg))
		_exit(126);
	dup2(out, 1);
	dup2(err, 2);
	for (const char *const *e = o->env; e && *e; e++)
		putenv((char *)*e);
	if (o->preload) {
		/* Under ASan the sanitizer runtimes must come first. */
		static char pre[2048];
		snprintf(pre, sizeof pre, "LD_PRELOAD=%s%s", FLEXPAGE_SANITIZER_PRELOAD,
		         FLEXPAGE_PRELOAD_LIB);
		putenv(pre);
#ifdef __SANITIZE_THREAD__
		/* A TSan report's symbolizer unmaps what it read with munmap,
		 * which libtsan's interceptor passes on to the next definition:
		 * the library's.  Its instrumented walk then runs inside the
		 * report, and TSan deadlocks on its own thread registry (the
		 * program hangs).  Unsymbolized, a report still stops the
		 * program (exit 66) and names each frame's module and offset,
		 * for addr2line. */
		static char tsan[4096];
		const char *was = getenv("TSAN_OPTIONS");
		snprintf(tsan, sizeof tsan, "TSAN_OPTIONS=%s symbolize=0", was ? was : "");
		putenv(tsan);
#endif
	}
	/* The engines leak at exit as they like. */
	if (FLEXPAGE_SANITIZER_PRELOAD[0])
		putenv("ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:handle_sigbus=0");
	execv(argv[0], (char *const *)argv);
	_exit(127);
}

static void append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*buf = realloc(*buf, *cap);
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = 0;
}

void pu_run(const char *const *argv, const struct pu_opts *o, struct pu_result *r)
{
	memset(r, 0, sizeof *r);
	char cg[512] = "";
	if (o->cgroup) {
		char why[256];
		cr_assert(ru_cgroup_available(why, sizeof why), "%s", why);
		uint64_t limit = o->limit == PU_NO_LIMIT ? 1ull << 50 : o->limit;
		cr_assert_eq(ru_cgroup_create(cg, sizeof cg, limit), 0, "cannot create a memory cgroup");
	}
	int po[2], pe[2];
	cr_assert_eq(pipe2(po, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(pe, O_CLOEXEC), 0);
	double t0 = now();
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		child(argv, o, cg[0] ? cg : NULL, po[1], pe[1]);
	close(po[1]);
	close(pe[1]);
	size_t olen = 0, ocap = 0, elen = 0, ecap = 0;
	append(&r->out, &olen, &ocap, "", 0);
	append(&r->err, &elen, &ecap, "", 0);
	struct pollfd pfd[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
	double deadline = t0 + (o->timeout_s ? o->timeout_s : 600);
	int open_fds = 2;
	while (open_fds) {
		int left = (int)((deadline - now()) * 1000);
		if (left <= 0) {
			kill(pid, SIGKILL);
			r->timed_out = 1;
			break;
		}
		if (poll(pfd, 2, left) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char buf[65536];
			ssize_t n = read(pfd[i].fd, buf, sizeof buf);
			if (n <= 0) {
				close(pfd[i].fd);
				pfd[i].fd = -1;
				open_fds--;
			} else if (i == 0) {
				append(&r->out, &olen, &ocap, buf, (size_t)n);
				if (o->on_out)
					o->on_out(r->out, olen, o->ctx);
			} else {
				append(&r->err, &elen, &ecap, buf, (size_t)n);
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);
	waitpid(pid, &r->status, 0);
	r->seconds = now() - t0;
	if (cg[0]) {
		r->cgroup_peak = ru_cgroup_max_usage(cg);
		ru_cgroup_remove(cg);
	}
}

void pu_result_free(struct pu_result *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof *r);
}

long long pu_summary(const char *err, const char *name, const char *key)
{
	long long v = -1;
	char pat[300];
	snprintf(pat, sizeof pat, "%s ", key);
	for (const char *line = err; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char buf[2048];
		snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), line);
		char *tag = strstr(buf, ": unmapped: ");
		if (!tag)
			tag = strstr(buf, ": at exit: ");
		if (!strncmp(buf, "flexpage: ", 10) && tag) {
			*tag = 0;
			size_t bl = strlen(buf), nl = strlen(name);
			char *k = strstr(tag + 1, pat);
			if (bl >= nl && !strcmp(buf + bl - nl, name) && k)
				v = strtoll(k + strlen(pat), NULL, 10);
		}
		line = end ? end + 1 : NULL;
	}
	return v;
}

int pu_count(const char *text, const char *what)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}
