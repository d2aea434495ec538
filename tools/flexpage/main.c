/* flexpage: pack, inspect and serve model weights through a userfaultfd
 * pager, and run a Llama-architecture decode loop over them. */
#include <stdio.h>
#include <string.h>

#include "cmds.h"

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *summary;
} commands[] = {
	{"pack", cmd_pack, "turn a file, a llama2.c checkpoint or a GGUF into a paged image"},
	{"inspect", cmd_inspect, "print an image's or a GGUF's tables and verify it"},
	{"cat", cmd_cat, "write an image's bytes to stdout, read through the pager"},
	{"run", cmd_run, "generate text with a model (resident, mmap or paged)"},
	{"perplexity", cmd_perplexity, "measure a model's perplexity over a text"},
	{"synth", cmd_synth, "write a synthetic model of a named shape as an image"},
	{"trace", cmd_trace, "summarise a recorded event trace; Chrome JSON and plots"},
	{"sim", cmd_sim, "replay a trace's accesses through eviction policies"},
	{"plan", cmd_plan, "choose the chunks to preserve within a budget"},
	{"prune", cmd_prune, "remove decoder layers, chosen by an evolutionary search"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: flexpage COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'flexpage COMMAND --help' describes each one.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("flexpage %s (image format %u)\n", FLEXPAGE_VERSION_STRING, FP_IMAGE_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "flexpage: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
