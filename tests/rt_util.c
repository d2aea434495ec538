#include "rt_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <flexmodel/model.h>
#include <flexpage/flexpage.h>

static int on_disk(const char *dir)
{
	struct statfs fs;
	return !statfs(dir, &fs) && fs.f_type != TMPFS_MAGIC && fs.f_type != RAMFS_MAGIC;
}

char *rt_tmpdir(void)
{
	const char *bases[] = {getenv("TMPDIR"), "/var/tmp", "/tmp", FLEXPAGE_BUILD_DIR};
	for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
		if (!bases[i] || !on_disk(bases[i]))
			continue;
		char *t = malloc(strlen(bases[i]) + 32);
		sprintf(t, "%s/flexpage-rt.XXXXXX", bases[i]);
		if (mkdtemp(t))
			return t;
		free(t);
	}
	return NULL;
}

void rt_rmtree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char p[4096];
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		struct stat st;
		if (!lstat(p, &st) && S_ISDIR(st.st_mode))
			rt_rmtree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

const char *rt_path(const char *dir, const char *name)
{
	static char ring[16][4096];
	static int next;
	char *p = ring[next++ % 16];
	snprintf(p, sizeof ring[0], "%s/%s", dir, name);
	return p;
}

int rt_write_file(const char *path, const void *buf, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	const int ok = fwrite(buf, 1, n, f) == n;
	return fclose(f) == 0 && ok ? 0 : -1;
}

void *rt_read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)size + 1);
	if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf)
		*n = (size_t)size;
	return buf;
}

int rt_copy_resized(const char *src, const char *dst, size_t n)
{
	size_t have;
	char *buf = rt_read_file(src, &have);
	if (!buf)
		return -1;
	char *out = malloc(n ? n : 1);
	memcpy(out, buf, n < have ? n : have);
	if (n > have)
		memset(out + have, 0x5a, n - have);
	int rc = rt_write_file(dst, out, n);
	free(buf);
	free(out);
	return rc;
}

/* Read both pipes until both close, so that neither can fill and block. */
static void drain(int fo, int fe, char *out, size_t outlen, char *err, size_t errlen)
{
	size_t no = 0, ne = 0;
	struct pollfd p[2] = {{fo, POLLIN, 0}, {fe, POLLIN, 0}};
	int open_fds = 2;
	while (open_fds) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char tmp[4096];
			ssize_t r = read(p[i].fd, tmp, sizeof tmp);
			if (r <= 0) {
				close(p[i].fd);
				p[i].fd = -1;
				open_fds--;
				continue;
			}
			char *dst = i ? err : out;
			size_t *n = i ? &ne : &no, cap = i ? errlen : outlen;
			for (ssize_t k = 0; k < r && *n + 1 < cap; k++)
				dst[(*n)++] = tmp[k];
		}
	}
	if (outlen)
		out[no < outlen ? no : outlen - 1] = 0;
	if (errlen)
		err[ne < errlen ? ne : errlen - 1] = 0;
}

int rt_run(const char *const argv[], const char *env_extra, char *out, size_t outlen,
           char *err, size_t errlen)
{
	int po[2], pe[2];
	if (pipe(po) || pipe(pe))
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		close(po[0]);
		close(pe[0]);
		close(po[1]);
		close(pe[1]);
		if (env_extra)
			putenv((char *)env_extra);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	drain(po[0], pe[0], out, outlen, err, errlen);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

char rt_out[1 << 16], rt_err[1 << 16];

int rt_tool(const char *first, ...)
{
	const char *argv[40] = {FLEXPAGE_TOOL, first};
	va_list ap;
	va_start(ap, first);
	int n = 2;
	while (first && n < 39 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return rt_run(argv, NULL, rt_out, sizeof rt_out, rt_err, sizeof rt_err);
}

int rt_pack_llama2c(const char *src, const char *dst, const char *quant, uint32_t chunk,
                    uint32_t codec, char *err, size_t errlen)
{
	struct fp_writer_options o = {.chunk_size = chunk, .codec = codec};
	fp_writer *w = fp_writer_create(dst, &o);
	if (!w) {
		snprintf(err, errlen, "%s", fp_last_error());
		return -1;
	}
	if (model_import_llama2c(src, w, quant)) {
		snprintf(err, errlen, "%s", model_last_error());
		fp_writer_abort(w);
		return -1;
	}
	if (fp_writer_finish(w)) {
		snprintf(err, errlen, "%s", fp_last_error());
		return -1;
	}
	return 0;
}

int rt_synth(const char *dst, const struct frt_config *cfg, int shared, int type, uint32_t chunk,
             uint32_t codec, uint64_t seed, int threads, char *err, size_t errlen)
{
	struct fp_writer_options o = {.chunk_size = chunk, .codec = codec};
	fp_writer *w = fp_writer_create(dst, &o);
	if (!w) {
		snprintf(err, errlen, "%s", fp_last_error());
		return -1;
	}
	if (model_synth_write(w, cfg, shared, type, seed, threads)) {
		snprintf(err, errlen, "%s", model_last_error());
		fp_writer_abort(w);
		return -1;
	}
	if (fp_writer_finish(w)) {
		snprintf(err, errlen, "%s", fp_last_error());
		return -1;
	}
	return 0;
}
