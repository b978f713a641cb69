/* cmd_inspect.c — `attnmap inspect PATH...`: tensors, shapes and dtypes of each file, the
 * roles found, and a check of every attention row (finite, >= 0, sums to 1) and gradient.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: attnmap inspect PATH... [--backend B] [--threads N]\n"
          "\n"
          "PATH: a .safetensors or .npy file, or a dataset directory. Lists the tensors\n"
          "and metadata keys, the roles attnmap finds, and checks every attention row.\n"
          "Exit 0 when the dataset is usable, 2 with a one-line reason when not.\n");
}

static void print_tensors(const am_file_t *f) {
  printf("%s\n", am_file_path(f));
  for (int i = 0; i < am_file_tensor_count(f); i++) {
    const am_tensor_t *t = am_file_tensor(f, i);
    printf("  %-28s %-5s [", am_file_tensor_name(f, i), am_dtype_name(t->dtype));
    for (int d = 0; d < t->ndim; d++)
      printf("%s%lld", d ? "," : "", (long long)t->shape[d]);
    printf("]\n");
  }
  for (int i = 0; i < am_file_metadata_count(f); i++) {
    const char *key = am_file_metadata_key(f, i);
    const char *v = am_file_metadata(f, key);
    printf("  __metadata__ %s (%zu bytes)\n", key, v ? strlen(v) : 0);
  }
}

/* The form of the attention: the matrices, or Q, K, V (and dO) with their settings. */
static void print_form(const am_dataset_t *ds) {
  am_long_form_info_t lf;
  if (!am_dataset_long_form(ds, &lf)) {
    printf("form: matrix (attentions [B,L,H,T,T])\n");
    return;
  }
  char window[32] = "none", cap[32] = "none";
  if (lf.sliding_window > 0)
    snprintf(window, sizeof window, "%d", lf.sliding_window);
  if (lf.softcap > 0.0)
    snprintf(cap, sizeof cap, "%.9g", lf.softcap);
  printf("form: long-context (queries/keys/values%s, docs/long-context.md) H=%d Hkv=%d "
         "d=%d scale=%.9g causal=%s window=%s soft-cap=%s\n",
         lf.output_grads ? "/attention_output_grads" : "", lf.heads, lf.kv_heads,
         lf.head_dim, lf.scale, lf.causal ? "yes" : "no", window, cap);
}

static void print_roles(const am_dataset_t *ds) {
  am_dataset_info_t info;
  am_dataset_get_info(ds, &info);
  printf("dataset: %lld examples in %d shard(s), L=%d H=%d T<=%d, %s\n",
         (long long)info.examples, info.shards, info.layers, info.heads, info.max_tokens,
         am_dtype_name(info.dtype));
  printf("roles:");
  for (unsigned bit = 1; am_role_name(bit); bit <<= 1)
    if (info.roles & bit)
      printf(" %s", am_role_name(bit));
  printf("\n");
  for (int i = 0; i < info.saliency_count; i++)
    printf("saliency: %s\n", am_dataset_saliency_name(ds, i));
  print_form(ds);
  if (info.grid)
    printf("grid: %s\n", info.grid);
  if (info.model)
    printf("model: %s\n", info.model);
  if (info.target)
    printf("target: %s (recorded by the exporter in %s; analyze uses it unless --target "
           "is given)\n",
           info.target, info.target_file);
  else
    printf("target: none recorded (analyze uses cls unless --target is given)\n");
}

int am_cli_inspect(int argc, char **argv) {
  static const struct option options[] = {{"backend", required_argument, 0, 'b'},
                                          {"threads", required_argument, 0, 't'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
  const char *backend = "cpu";
  int threads = 0, c, code = AM_EXIT_OK;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
    if (c == 'h') {
      usage(stdout);
      return AM_EXIT_OK;
    }
    if (c == 'b')
      backend = optarg;
    else if (c == 't') {
      char *end = NULL;
      long v = strtol(optarg, &end, 10);
      if (end == optarg || *end || v < 1 || v > 4096)
        return am_cli_usage_error("inspect", "--threads '%s': expected a positive integer",
                                  optarg);
      threads = (int)v;
    } else
      return am_cli_usage_error("inspect", "unknown option '%s'", argv[optind - 1]);
  }
  if (optind >= argc)
    return am_cli_usage_error("inspect", "no PATH given");
  am_ctx_t *ctx = am_cli_context(backend, threads, &code);
  if (!ctx)
    return code;
  am_dataset_t *ds = NULL;
  am_status st =
      am_dataset_open(ctx, (const char *const *)argv + optind, argc - optind, &ds);
  if (st == AM_STATUS_OK) {
    for (int s = 0; s < am_dataset_shard_count(ds); s++)
      for (int f = 0; f < am_dataset_shard_file_count(ds, s); f++)
        print_tensors(am_dataset_shard_file(ds, s, f));
    print_roles(ds);
    st = am_dataset_check(ctx, ds);
    if (st == AM_STATUS_OK && am_dataset_long_form(ds, NULL))
      printf("check: every value of queries, keys and values over the valid positions is "
             "finite, and every attention score (attention_output_grads are checked as "
             "analyze reads them)\n");
    else if (st == AM_STATUS_OK)
      printf("check: every attention row is finite, non-negative and sums to 1 over the "
             "valid keys; gradients are finite\n");
  } else {
    /* Show what can be read of each file, then the reason the dataset is unusable. */
    for (int i = optind; i < argc; i++) {
      am_file_t *f = NULL;
      am_ctx_t *quiet = am_cli_context("cpu", 1, &code);
      if (quiet && am_file_open(quiet, argv[i], &f) == AM_STATUS_OK)
        print_tensors(f);
      am_file_close(f);
      am_ctx_destroy(quiet);
    }
  }
  if (st != AM_STATUS_OK)
    code = am_cli_fail(ctx, st);
  am_dataset_close(ds);
  am_ctx_destroy(ctx);
  return code;
}
