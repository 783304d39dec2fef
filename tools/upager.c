/*
 * upager: the command-line front end. For now one command, `features`,
 * which says whether this machine lets upager run and what the kernel
 * offers; `run`, `stat` and `top` come with the preload and the daemon.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <upager/upager.h>

static int cmd_features(void)
{
	struct upg_options o;
	struct upg_runtime *rt;
	unsigned int f;
	int ret;

	if (upg_options_init(&o))
		fprintf(stderr, "upager: a UPAGER_* variable is bad (see above); using defaults for it\n");
	ret = upg_runtime_create(&o, &rt);
	if (ret) {
		fprintf(stderr, "upager: cannot start a runtime: %s\n", strerror(-ret));
		return 1;
	}
	f = upg_runtime_features(rt);
	for (unsigned int bit = 1; bit & UPG_FEAT_ALL; bit <<= 1)
		printf("%-14s %s\n", upg_feature_name(bit), f & bit ? "yes" : "no");
	upg_runtime_destroy(rt);
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: upager features    kernel features upager can use here\n");
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "features"))
		return cmd_features();
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
