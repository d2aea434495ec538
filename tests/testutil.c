#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- CRC-32C ---------------------------------------------------------- */

uint32_t tu_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	crc = ~crc;
	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return ~crc;
}

/* ---- data ------------------------------------------------------------- */

uint64_t tu_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

void tu_fill_random(uint64_t seed, void *buf, size_t n)
{
	uint8_t *p = buf;
	uint64_t s = seed * 0x2545F4914F6CDD1Dull + 1;
	while (n >= 8) {
		uint64_t v = tu_rand(&s);
		memcpy(p, &v, 8);
		p += 8;
		n -= 8;
	}
	if (n) {
		uint64_t v = tu_rand(&s);
		memcpy(p, &v, n);
	}
}

void tu_fill_compressible(uint64_t seed, void *buf, size_t n)
{
	static const char *words[] = {"weight ", "tensor ", "chunk ", "page ", "fault ",
	                              "zstd ", "layer ", "\x00\x00\x00\x00", "q8_0 "};
	uint8_t *p = buf;
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
	size_t i = 0;
	while (i < n) {
		uint64_t r = tu_rand(&s);
		const char *w = words[r % 9];
		size_t wl = (r % 9 == 7) ? 4 : strlen(w);
		for (size_t k = 0; k < wl && i < n; k++)
			p[i++] = (uint8_t)w[k];
		if ((r >> 32) % 16 == 0 && i < n)
			p[i++] = (uint8_t)(r >> 40); /* a little noise */
	}
}

/* ---- files ------------------------------------------------------------ */

static int on_disk_fs(const char *dir)
{
	struct statfs sf;
	return !statfs(dir, &sf) && sf.f_type != TMPFS_MAGIC && sf.f_type != RAMFS_MAGIC;
}

char *tu_tmpdir(void)
{
#ifndef FLEXPAGE_BUILD_DIR
#define FLEXPAGE_BUILD_DIR "."
#endif
	static const char *bases[] = {"/var/tmp", "/tmp", FLEXPAGE_BUILD_DIR};
	for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
		if (!on_disk_fs(bases[i]))
			continue;
		char *t = tu_join(bases[i], "flexpage-test.XXXXXX");
		if (t && mkdtemp(t))
			return t;
		free(t);
	}
	return NULL;
}

static int rm_entry(const char *path)
{
	struct stat st;
	if (lstat(path, &st))
		return -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char *sub = tu_join(path, e->d_name);
		if (sub)
			rm_entry(sub);
		free(sub);
	}
	closedir(d);
	return rmdir(path);
}

void tu_rmtree(const char *dir)
{
	if (dir && strstr(dir, "flexpage-test."))
		rm_entry(dir);
}

char *tu_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

int tu_write_file(const char *path, const void *buf, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	const char *p = buf;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return close(fd);
}

void *tu_read_file(const char *path, size_t *n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st)) {
		close(fd);
		return NULL;
	}
	size_t cap = (size_t)st.st_size + 1, len = 0;
	char *buf = malloc(cap);
	while (buf) {
		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			buf = NULL;
			break;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (buf) {
		buf[len] = 0;
		*n = len;
	}
	return buf;
}

int tu_file_exists(const char *path)
{
	struct stat st;
	return !lstat(path, &st);
}

char *tu_dir_extras(const char *dir, const char *const *expected)
{
	size_t cap = 256, len = 0;
	char *out = calloc(1, cap);
	DIR *d = opendir(dir);
	if (!d || !out) {
		if (d)
			closedir(d);
		free(out);
		return strdup("(cannot list the directory)");
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		int known = 0;
		for (const char *const *x = expected; x && *x; x++)
			known |= !strcmp(*x, e->d_name);
		if (known)
			continue;
		size_t need = len + strlen(e->d_name) + 2;
		if (need > cap) {
			char *no = realloc(out, need * 2);
			if (!no)
				break;
			out = no;
			cap = need * 2;
		}
		len += (size_t)sprintf(out + len, "%s%s", len ? " " : "", e->d_name);
	}
	closedir(d);
	return out;
}

int tu_contains_any(const char *hay, const char *alternatives)
{
	const char *a = alternatives;
	while (*a) {
		const char *bar = strchr(a, '|');
		size_t n = bar ? (size_t)(bar - a) : strlen(a);
		for (const char *h = hay; n && *h; h++)
			if (!strncasecmp(h, a, n))
				return 1;
		if (!bar)
			break;
		a = bar + 1;
	}
	return 0;
}

/* ---- byte-level image access ----------------------------------------- */

int tu_load(const char *path, tu_file *f)
{
	f->data = tu_read_file(path, &f->len);
	return f->data ? 0 : -1;
}

int tu_save(const char *path, const tu_file *f)
{
	return tu_write_file(path, f->data, f->len);
}

void tu_free(tu_file *f)
{
	free(f->data);
	f->data = NULL;
	f->len = 0;
}

static void check_range(const tu_file *f, uint64_t off, size_t n)
{
	if (off > f->len || n > f->len - off) {
		fprintf(stderr, "testutil: access at %llu+%zu past the file (%zu bytes)\n",
		        (unsigned long long)off, n, f->len);
		abort();
	}
}

uint32_t tu_get32(const tu_file *f, uint64_t off)
{
	check_range(f, off, 4);
	const uint8_t *p = f->data + off;
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t tu_get64(const tu_file *f, uint64_t off)
{
	return (uint64_t)tu_get32(f, off) | (uint64_t)tu_get32(f, off + 4) << 32;
}

void tu_set32(tu_file *f, uint64_t off, uint32_t v)
{
	check_range(f, off, 4);
	uint8_t *p = f->data + off;
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void tu_set64(tu_file *f, uint64_t off, uint64_t v)
{
	tu_set32(f, off, (uint32_t)v);
	tu_set32(f, off + 4, (uint32_t)(v >> 32));
}

uint64_t tu_tensor_at(const tu_file *f, uint32_t i)
{
	return tu_get64(f, TU_H_TT_OFFSET) + (uint64_t)i * TU_T_BYTES;
}

uint64_t tu_chunk_at(const tu_file *f, uint32_t i)
{
	return tu_get64(f, TU_H_CT_OFFSET) + (uint64_t)i * TU_C_BYTES;
}

static int in_file(const tu_file *f, uint64_t off, uint64_t n)
{
	return off <= f->len && n <= f->len - off;
}

void tu_fix_tables_crc(tu_file *f)
{
	uint64_t to = tu_get64(f, TU_H_TT_OFFSET), ts = tu_get64(f, TU_H_TT_SIZE);
	uint64_t co = tu_get64(f, TU_H_CT_OFFSET), cs = tu_get64(f, TU_H_CT_SIZE);
	uint64_t mo = tu_get64(f, TU_H_META_OFFSET), ms = tu_get64(f, TU_H_META_SIZE);
	if (!in_file(f, to, ts) || !in_file(f, co, cs) || !in_file(f, mo, ms))
		return;
	uint32_t crc = tu_crc32c(0, f->data + to, ts);
	crc = tu_crc32c(crc, f->data + co, cs);
	/* version 4: the alternate-form table follows the chunk table */
	uint64_t as = tu_get32(f, TU_H_VERSION) >= 4 ? (uint64_t)tu_get32(f, TU_H_N_ALTS) * TU_C_BYTES : 0;
	if (as && in_file(f, co + cs, as))
		crc = tu_crc32c(crc, f->data + co + cs, as);
	crc = tu_crc32c(crc, f->data + mo, ms);
	tu_set32(f, TU_H_TABLES_CRC, crc);
}

void tu_fix_header_crc(tu_file *f)
{
	tu_set32(f, TU_H_HEADER_CRC, tu_crc32c(0, f->data, TU_H_HEADER_CRC));
}

void tu_fix_crcs(tu_file *f)
{
	tu_fix_tables_crc(f);
	tu_fix_header_crc(f);
}

/* ---- running a program ------------------------------------------------ */

int tu_run(const char *iodir, const char *const *argv, int timeout_s, struct tu_proc *p)
{
	memset(p, 0, sizeof *p);
	char *op = tu_join(iodir, "stdout"), *ep = tu_join(iodir, "stderr");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, op, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_addopen(&fa, 2, ep, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		free(op);
		free(ep);
		errno = rc;
		return -1;
	}
	int status = 0;
	struct timespec t0, now, nap = {0, 2 * 1000 * 1000};
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			status = 0;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!p->timed_out && now.tv_sec - t0.tv_sec >= timeout_s) {
			p->timed_out = 1;
			kill(pid, SIGKILL);
		}
		nanosleep(&nap, NULL);
	}
	if (WIFEXITED(status)) {
		p->exited = 1;
		p->code = WEXITSTATUS(status);
	} else if (WIFSIGNALED(status)) {
		p->sig = WTERMSIG(status);
	}
	p->out = tu_read_file(op, &p->out_len);
	p->err = tu_read_file(ep, &p->err_len);
	if (!p->out)
		p->out = calloc(1, 1);
	if (!p->err)
		p->err = calloc(1, 1);
	unlink(op);
	unlink(ep);
	free(op);
	free(ep);
	return 0;
}

void tu_proc_free(struct tu_proc *p)
{
	free(p->out);
	free(p->err);
	p->out = p->err = NULL;
}
