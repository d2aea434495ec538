/* Temporary files renamed over their destination when complete. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "tmpfile.h"

int fp_tmpfile_create(const char *path, char **tmp)
{
	*tmp = malloc(strlen(path) + 16);
	if (!*tmp) {
		fp_err("%s: out of memory", path);
		errno = ENOMEM;
		return -1;
	}
	sprintf(*tmp, "%s.tmp.XXXXXX", path);
	int fd = mkostemp(*tmp, O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		fp_err("%s: cannot create a temporary file beside it: %s", path, strerror(e));
		free(*tmp);
		*tmp = NULL;
		errno = e;
		return -1;
	}
	fchmod(fd, 0644);
	return fd;
}

static void fsync_dir(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return;
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

int fp_tmpfile_commit(int fd, const char *tmp, const char *path)
{
	if (fsync(fd)) {
		int e = errno;
		fp_err("%s: cannot finish the file: %s", tmp, strerror(e));
		errno = e;
		return -1;
	}
	if (rename(tmp, path)) {
		int e = errno;
		fp_err("%s: cannot rename %s over it: %s", path, tmp, strerror(e));
		errno = e;
		return -1;
	}
	fsync_dir(path);
	return 0;
}
