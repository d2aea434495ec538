#include "input.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

const char *fz_file(const uint8_t *data, size_t size, uint64_t file_size, int *fd)
{
	static int mfd = -1;
	static char path[64];
	if (mfd < 0) {
		mfd = memfd_create("fuzz-input", MFD_CLOEXEC);
		if (mfd < 0) {
			perror("memfd_create");
			abort();
		}
		snprintf(path, sizeof path, "/proc/self/fd/%d", mfd);
	}
	if (file_size < size)
		file_size = size;
	if (ftruncate(mfd, 0) || (size && pwrite(mfd, data, size, 0) != (ssize_t)size) ||
	    ftruncate(mfd, (off_t)file_size)) {
		perror("fuzz input file");
		abort();
	}
	if (fd)
		*fd = mfd;
	return path;
}
