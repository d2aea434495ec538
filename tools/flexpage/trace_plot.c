/* flexpage trace --plot PREFIX: PREFIX-latency.png (the distribution of
 * fault service latency, log-scale x), PREFIX-resident.png (resident
 * bytes and the budget over time) and PREFIX-inflight.png (reads in flight
 * over time), drawn by gnuplot from data files in a temporary directory. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "trace_tool.h"

/* 1 if an executable named prog is on PATH. */
static int on_path(const char *prog)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *colon = strchr(path, ':');
		size_t len = colon ? (size_t)(colon - path) : strlen(path);
		char full[4096];
		if (len && len + strlen(prog) + 2 < sizeof full) {
			snprintf(full, sizeof full, "%.*s/%s", (int)len, path, prog);
			if (!access(full, X_OK))
				return 1;
		}
		path += len + (colon ? 1 : 0);
	}
	return 0;
}

/* A gnuplot single-quoted string: a quote is doubled, nothing else is special. */
static void gp_str(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', f);
		if (*s != '\n' && *s != '\r')
			fputc(*s, f);
	}
	fputc('\'', f);
}

/* Log-spaced bins, 10 per decade: "lo hi count" lines in us. */
static int write_latency(const char *file, const uint64_t *v, size_t n, double *xmin, double *xmax)
{
	FILE *f = fopen(file, "w");
	if (!f)
		return -1;
	double lo_us = (double)(v[0] ? v[0] : 1) / 1e3, hi_us = (double)(v[n - 1] ? v[n - 1] : 1) / 1e3;
	int k0 = (int)floor(log10(lo_us) * 10), k1 = (int)floor(log10(hi_us) * 10);
	size_t i = 0;
	for (int k = k0; k <= k1; k++) {
		double a = pow(10, k / 10.0), b = pow(10, (k + 1) / 10.0);
		uint64_t count = 0;
		while (i < n && (k == k1 || (double)(v[i] ? v[i] : 1) / 1e3 < b)) {
			count++;
			i++;
		}
		fprintf(f, "%.6g %.6g %llu\n", a, b, (unsigned long long)count);
	}
	*xmin = pow(10, k0 / 10.0);
	*xmax = pow(10, (k1 + 1) / 10.0);
	return fclose(f) ? -1 : 0;
}

static int write_resident(const char *file, const struct tt_model *m)
{
	FILE *f = fopen(file, "w");
	if (!f)
		return -1;
	for (size_t i = 0; i < m->n_res; i++) {
		const struct tt_point *p = &m->res[i];
		fprintf(f, "%.6f %.6f %.6f\n", (double)p->t / 1e6,
		        (double)(p->resident > 0 ? p->resident : 0) / 1048576.0,
		        (double)p->budget / 1048576.0);
	}
	return fclose(f) ? -1 : 0;
}

static int write_inflight(const char *file, const struct tt_model *m)
{
	FILE *f = fopen(file, "w");
	if (!f)
		return -1;
	for (size_t i = 0; i < m->n_inflight; i++)
		fprintf(f, "%.6f %u\n", (double)m->inflight[i].t / 1e6, m->inflight[i].depth);
	fprintf(f, "%.6f %u\n", (double)m->t_last / 1e6,
	        m->n_inflight ? m->inflight[m->n_inflight - 1].depth : 0);
	return fclose(f) ? -1 : 0;
}

static void latency_script(FILE *g, const struct tt_model *m, const char *png, const char *data,
                           const uint64_t *v, size_t n, double xmin, double xmax)
{
	fprintf(g, "set output ");
	gp_str(g, png);
	fprintf(g, "\nset logscale x 10\nset xlabel 'fault record -> load record (us, log scale)'\n"
	           "set ylabel 'demand faults per bin (10 bins per decade)'\nset grid xtics ytics mxtics\n"
	           "set style fill solid 0.5 border rgb '#224466'\nset yrange [0:*]\n");
	char title[512];
	if (!n) {
		snprintf(title, sizeof title, "fault service latency: no demand faults in %s", m->path);
		fprintf(g, "set title ");
		gp_str(g, title);
		fprintf(g, "\nset xrange [1:1000]\nset yrange [0:1]\n"
		           "set label 1 'no demand fault waited for a load' at graph 0.5, graph 0.5 center\n"
		           "plot 1/0 notitle\n");
		return;
	}
	snprintf(title, sizeof title, "fault service latency: %zu demand faults (%s)", n, m->path);
	fprintf(g, "set title ");
	gp_str(g, title);
	fprintf(g, "\nset xrange [%.6g:%.6g]\n", xmin, xmax);
	static const struct {
		double q;
		const char *name, *color;
	} mark[] = {{0.5, "p50", "#228833"}, {0.9, "p90", "#ccbb44"}, {0.99, "p99", "#ee6677"}};
	for (int i = 0; i < 3; i++) {
		double x = (double)tt_quantile(v, n, mark[i].q) / 1e3;
		if (x <= 0)
			x = 0.001;
		fprintf(g, "set arrow %d from %.6g, graph 0 to %.6g, graph 1 nohead lw 2 dt 2 lc rgb '%s'\n",
		        i + 1, x, x, mark[i].color);
		fprintf(g, "set label %d '%s %.1f us' at %.6g, graph %.2f left offset 0.5,0 tc rgb '%s'\n",
		        i + 1, mark[i].name, x, x, 0.95 - 0.06 * i, mark[i].color);
	}
	fprintf(g, "plot ");
	gp_str(g, data);
	fprintf(g, " using (sqrt($1*$2)):3:1:2:(0):3 with boxxyerror lc rgb '#4477aa' notitle\n");
}

static void resident_script(FILE *g, const struct tt_model *m, const char *png, const char *data)
{
	char title[512];
	fprintf(g, "unset arrow\nunset label\nunset logscale\nset autoscale\nset grid\n"
	           "set yrange [0:*]\nset output ");
	gp_str(g, png);
	snprintf(title, sizeof title, "resident bytes over time (%s, policy %s)", m->path,
	         m->h->policy);
	fprintf(g, "\nset title ");
	gp_str(g, title);
	fprintf(g, "\nset xlabel 'time since the region opened (ms)'\nset ylabel 'MiB'\n"
	           "set key bottom right\n");
	if (!m->t_last)
		fprintf(g, "set xrange [0:1]\n");
	/* Token boundaries, when there are few enough to see. */
	if (m->n_tokens && m->n_tokens <= 200)
		for (size_t k = 0; k < m->n_tokens; k++)
			fprintf(g, "set arrow from %.6f, graph 0 to %.6f, graph 1 nohead lc rgb '#dddddd'\n",
			        (double)m->tokens[k].start / 1e6, (double)m->tokens[k].start / 1e6);
	fprintf(g, "plot ");
	gp_str(g, data);
	fprintf(g, " using 1:2 with steps lw 2 lc rgb '#4477aa' title 'resident', ");
	gp_str(g, data);
	fprintf(g, " using 1:3 with steps lw 1 dt 2 lc rgb '#ee6677' title 'budget'%s\n",
	        m->n_tokens && m->n_tokens <= 200 ? ", 1/0 with lines lc rgb '#dddddd' title 'token starts'"
	                                         : "");
}

static void inflight_script(FILE *g, const struct tt_model *m, const char *png, const char *data)
{
	char title[512];
	fprintf(g, "unset arrow\nunset label\nunset logscale\nset autoscale\nset grid\n"
	           "set yrange [0:%d]\nset output ", m->why.max_depth + 1);
	gp_str(g, png);
	snprintf(title, sizeof title, "reads in flight over time (%s, %u loaders; mean %.2f)",
	         m->path, m->h->loaders, m->t_last ? m->why.depth_area / (double)m->t_last : 0.0);
	fprintf(g, "\nset title ");
	gp_str(g, title);
	fprintf(g, "\nset xlabel 'time since the region opened (ms)'\nset ylabel 'reads in flight'\n"
	           "set key top right\n");
	if (!m->t_last)
		fprintf(g, "set xrange [0:1]\n");
	fprintf(g, "plot ");
	gp_str(g, data);
	fprintf(g, " using 1:2 with steps lw 1 lc rgb '#4477aa' title 'reads in flight'\n");
}

static int nonempty(const char *path)
{
	struct stat st;
	return !stat(path, &st) && st.st_size > 0;
}

int tt_plot(const struct tt_model *m, const char *prefix)
{
	if (!on_path("gnuplot")) {
		fprintf(stderr, "flexpage trace: --plot needs gnuplot, which is not installed "
		                "(Debian: apt-get install gnuplot-nox)\n");
		return -1;
	}
	size_t plen = strlen(prefix) + 32;
	char *lat_png = malloc(plen), *res_png = malloc(plen), *fly_png = malloc(plen);
	const char *tmp = getenv("TMPDIR");
	char dir[4096], lat_dat[4200], res_dat[4200], fly_dat[4200];
	snprintf(dir, sizeof dir, "%s/flexpage-plot-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!lat_png || !res_png || !fly_png || !mkdtemp(dir)) {
		fprintf(stderr, "flexpage trace: cannot make a temporary directory: %s\n",
		        strerror(errno));
		free(lat_png);
		free(res_png);
		free(fly_png);
		return -1;
	}
	snprintf(lat_png, plen, "%s-latency.png", prefix);
	snprintf(res_png, plen, "%s-resident.png", prefix);
	snprintf(fly_png, plen, "%s-inflight.png", prefix);
	snprintf(lat_dat, sizeof lat_dat, "%s/latency.dat", dir);
	snprintf(res_dat, sizeof res_dat, "%s/resident.dat", dir);
	snprintf(fly_dat, sizeof fly_dat, "%s/inflight.dat", dir);
	remove(lat_png);
	remove(res_png);
	remove(fly_png);

	int rc = -1;
	size_t n = 0;
	uint64_t *v = tt_latencies(m, TT_LAT_SERVICE, &n);
	double xmin = 1, xmax = 1000;
	if ((n && write_latency(lat_dat, v, n, &xmin, &xmax)) || write_resident(res_dat, m) ||
	    write_inflight(fly_dat, m)) {
		fprintf(stderr, "flexpage trace: cannot write plot data in %s: %s\n", dir,
		        strerror(errno));
		goto out;
	}
	fflush(stdout);
	FILE *g = popen("gnuplot", "w");
	if (!g) {
		fprintf(stderr, "flexpage trace: cannot run gnuplot: %s\n", strerror(errno));
		goto out;
	}
	fprintf(g, "set terminal pngcairo size 1000,560 noenhanced font 'sans,10'\n");
	latency_script(g, m, lat_png, lat_dat, v, n, xmin, xmax);
	resident_script(g, m, res_png, res_dat);
	inflight_script(g, m, fly_png, fly_dat);
	fprintf(g, "unset output\n");
	int st = pclose(g);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "flexpage trace: gnuplot failed (%s %d)\n",
		        st != -1 && WIFSIGNALED(st) ? "signal" : "exit status",
		        st == -1 ? -1 : WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		goto out;
	}
	if (!nonempty(lat_png) || !nonempty(res_png) || !nonempty(fly_png)) {
		fprintf(stderr, "flexpage trace: gnuplot wrote no %s\n",
		        !nonempty(lat_png) ? lat_png : !nonempty(res_png) ? res_png : fly_png);
		goto out;
	}
	rc = 0;
out:
	free(v);
	remove(lat_dat);
	remove(res_dat);
	remove(fly_dat);
	rmdir(dir);
	free(lat_png);
	free(res_png);
	free(fly_png);
	return rc;
}
