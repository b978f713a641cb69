/* test_options.c — the public names and the option table (pipeline/options.c,
 * pipeline/names.c): status names from the X-macro, lists queryable at run time, every
 * option settable by name within its stated range and refused outside it with one line,
 * the defaults the table states equal to the *_init functions', the library refusing
 * out-of-range structs (am_ctx_create with 100,000 threads used to crash), and the CLI
 * reading its options, help and errors from the same table. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/options.h"
#include "support/run_cli.h"

TestSuite(options, .timeout = 60);

Test(options, status_names_come_from_the_list) {
  cr_expect_str_eq(am_status_name(AM_STATUS_OK), "OK");
  cr_expect_str_eq(am_status_name(AM_STATUS_BAD_INPUT), "BAD_INPUT");
  cr_expect_str_eq(am_status_name(AM_STATUS_INTERNAL), "INTERNAL");
  cr_expect_null(am_status_name((am_status)99));
  cr_expect_null(am_status_name((am_status)-1));
}

Test(options, lists_are_queryable) {
  cr_expect_eq(am_list_count(AM_LIST_METHODS), 8);
  for (int i = 0; i < am_list_count(AM_LIST_METHODS); i++)
    cr_expect_eq(am_list_find(AM_LIST_METHODS, am_list_name(AM_LIST_METHODS, i)), i);
  cr_expect_str_eq(am_list_name(AM_LIST_METHODS, 3), "flow");
  cr_expect_eq(1u << am_list_find(AM_LIST_METHODS, "head_importance"),
               (unsigned)AM_METHOD_HEAD_IMPORTANCE);
  cr_expect_str_eq(am_list_name(AM_LIST_STATS, 0), "entropy");
  cr_expect_str_eq(am_list_name(AM_LIST_METRICS, 4), "jaccard@k");
  cr_expect_eq(am_list_find(AM_LIST_FUSIONS, "min"), AM_FUSION_MIN);
  cr_expect_eq(am_list_find(AM_LIST_TARGETS, "mean"), AM_TARGET_MEAN);
  cr_expect_eq(am_list_find(AM_LIST_NORMALIZE, "minmax"), AM_NORMALIZE_MINMAX);
  cr_expect_null(am_list_name(AM_LIST_STATS, am_list_count(AM_LIST_STATS)));
  cr_expect_eq(am_list_count(AM_LIST_COUNT), 0);
  cr_expect_eq(am_list_find(AM_LIST_METHODS, "bogus"), -1);
}

Test(options, abi_queries) {
  cr_expect_eq(am_abi_sizeof("am_plan_t"), sizeof(am_plan_t));
  cr_expect_eq(am_abi_sizeof("am_settings_t"), sizeof(am_settings_t));
  cr_expect_eq(am_abi_sizeof("nope"), 0);
  long long v = 0;
  cr_expect_eq(am_abi_constant("AM_ARRAYS_STATS", &v), AM_STATUS_OK);
  cr_expect_eq(v, AM_ARRAYS_STATS);
  cr_expect_eq(am_abi_constant("AM_NOPE", &v), AM_STATUS_INVALID_ARGUMENT);
}

/* Setting each option to the default the table states gives the *_init settings. */
Test(options, stated_defaults_are_the_init_defaults) {
  am_settings_t a, b;
  am_settings_init(&a);
  for (int i = 0; i < am_option_count(); i++) {
    const am_option_info_t *o = am_option_get(i);
    cr_assert_not_null(o->help);
    if (!o->fallback || !o->fallback[0])
      continue; /* methods, pairs: "all" is the absence of a list */
    char err[256];
    memcpy(&b, &a, sizeof b);
    cr_assert_eq(am_settings_set(&b, o->name, o->fallback, err, sizeof err), AM_STATUS_OK,
                 "%s", err);
    if (o->kind == AM_OPTION_TEXT)
      cr_expect_str_eq(b.ctx.backend, o->fallback);
    else
      cr_expect_eq(memcmp(&a, &b, sizeof a), 0, "default of %s", o->name);
  }
  cr_expect_null(am_option_get(am_option_count()));
}

/* Every numeric option: its bounds are accepted, one step beyond refused with the range
 * in the message, by name and through the library's check of a filled struct. */
Test(options, every_numeric_option_has_a_checked_range) {
  for (int i = 0; i < am_option_count(); i++) {
    const am_option_info_t *o = am_option_get(i);
    if (o->kind != AM_OPTION_INT && o->kind != AM_OPTION_REAL)
      continue;
    double lo = NAN, hi = NAN;
    cr_assert_eq(am_option_bounds(o->name, &lo, &hi), AM_STATUS_OK);
    cr_assert(lo <= hi && isfinite(lo) && isfinite(hi), "%s", o->name);
    char text[64], err[256];
    am_settings_t s;
    am_settings_init(&s);
    snprintf(text, sizeof text, "%.17g", lo);
    cr_expect_eq(am_settings_set(&s, o->name, text, err, sizeof err), AM_STATUS_OK, "%s",
                 err);
    snprintf(text, sizeof text, "%.17g", o->max_open ? hi : hi + 1);
    cr_expect_eq(am_settings_set(&s, o->name, text, err, sizeof err),
                 AM_STATUS_INVALID_ARGUMENT, "%s=%s accepted", o->name, text);
    cr_expect(strstr(err, o->name) && strstr(err, "expected") && !strchr(err, '\n'), "%s",
              err);
    snprintf(text, sizeof text, "%.17g", lo - 1);
    cr_expect_eq(am_settings_set(&s, o->name, text, err, sizeof err),
                 AM_STATUS_INVALID_ARGUMENT, "%s=%s accepted", o->name, text);
    cr_expect_eq(am_settings_set(&s, o->name, "nan", err, sizeof err),
                 AM_STATUS_INVALID_ARGUMENT, "%s=nan accepted", o->name);
    cr_expect_eq(am_settings_set(&s, o->name, "", err, sizeof err),
                 AM_STATUS_INVALID_ARGUMENT);
  }
  cr_expect_eq(am_option_bounds("fusion", NULL, NULL), AM_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(am_option_bounds("nope", NULL, NULL), AM_STATUS_INVALID_ARGUMENT);
}

Test(options, values_by_name) {
  am_settings_t s;
  am_settings_init(&s);
  char err[256];
  cr_assert_eq(am_settings_set(&s, "target", "-2", err, sizeof err), AM_STATUS_OK);
  cr_expect(s.plan.target == AM_TARGET_INDEX && s.plan.target_index == -2);
  cr_assert_eq(am_settings_set(&s, "target", "last", err, sizeof err), AM_STATUS_OK);
  cr_expect_eq(s.plan.target, AM_TARGET_LAST);
  /* 2^32 + 3 is not 3 */
  cr_expect_eq(am_settings_set(&s, "target", "4294967299", err, sizeof err),
               AM_STATUS_INVALID_ARGUMENT);
  cr_expect(strstr(err, "target '4294967299'"), "%s", err);
  cr_expect_eq(am_settings_set(&s, "target", "index", err, sizeof err),
               AM_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(am_settings_set(&s, "methods", "rollout,flow", err, sizeof err),
               AM_STATUS_OK);
  cr_expect(s.plan.methods == (AM_METHOD_ROLLOUT | AM_METHOD_FLOW) &&
            s.plan.methods_explicit == 1);
  cr_expect_eq(am_settings_set(&s, "methods", "rollout,,flow", err, sizeof err),
               AM_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(am_settings_set(&s, "fusion", "max", err, sizeof err), AM_STATUS_OK);
  cr_expect_eq(s.plan.fusion, AM_FUSION_MAX);
  cr_assert_eq(am_settings_set(&s, "row-tolerance", "0.01", err, sizeof err), AM_STATUS_OK);
  cr_expect_eq(s.plan.row_tolerance, 0.01);
  cr_assert_eq(am_settings_set(&s, "include_special", "1", err, sizeof err), AM_STATUS_OK);
  cr_expect_eq(s.plan.include_special, 1);
  cr_expect_eq(am_settings_set(&s, "include_special", "yes", err, sizeof err),
               AM_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(am_settings_set(&s, "views", "0", err, sizeof err), AM_STATUS_OK);
  cr_expect_eq(s.report.views, 0);
  cr_expect_eq(am_settings_set(&s, "bogus", "1", err, sizeof err),
               AM_STATUS_INVALID_ARGUMENT);
  cr_expect(strstr(err, "bogus: unknown option"), "%s", err);
  cr_expect_eq(am_settings_set(NULL, "topk", "1", NULL, 0), AM_STATUS_INVALID_ARGUMENT);
}

/* The library checks what a caller put in the structs directly, with the same ranges. */
Test(options, library_refuses_out_of_range_structs) {
  am_ctx_options_t co = {.backend = "cpu", .threads = 100000};
  am_ctx_t *ctx = (am_ctx_t *)1;
  char err[256] = "";
  cr_assert_eq(am_ctx_create(&co, &ctx, err, sizeof err), AM_STATUS_INVALID_ARGUMENT);
  cr_expect_null(ctx);
  cr_expect(strstr(err, "threads = 100000: expected an integer in [0,1024]"), "%s", err);
  co.threads = -1;
  cr_expect_eq(am_ctx_create(&co, &ctx, err, sizeof err), AM_STATUS_INVALID_ARGUMENT);
  am_plan_t plan;
  am_plan_init(&plan);
  cr_expect_eq(am_options_check(NULL, AM_SCOPE_PLAN, &plan, NULL, 0), AM_STATUS_OK);
  plan.topk = 0;
  cr_expect_eq(am_options_check(NULL, AM_SCOPE_PLAN, &plan, err, sizeof err),
               AM_STATUS_INVALID_ARGUMENT);
  cr_expect(strstr(err, "topk = 0"), "%s", err);
  am_plan_init(&plan);
  plan.fusion = (am_fusion)7;
  cr_expect_eq(am_options_check(NULL, AM_SCOPE_PLAN, &plan, err, sizeof err),
               AM_STATUS_INVALID_ARGUMENT);
  am_plan_init(&plan);
  plan.target = AM_TARGET_INDEX;
  plan.target_index = 2000000;
  cr_expect_eq(am_options_check(NULL, AM_SCOPE_PLAN, &plan, err, sizeof err),
               AM_STATUS_INVALID_ARGUMENT);
  am_run_options_t ro;
  am_run_options_init(&ro);
  ro.checkpoint_s = INFINITY;
  cr_expect_eq(am_options_check(NULL, AM_SCOPE_RUN, &ro, err, sizeof err),
               AM_STATUS_INVALID_ARGUMENT);
  am_report_options_t rep;
  am_report_options_init(&rep);
  rep.drift = NAN;
  cr_expect_eq(am_options_check(NULL, AM_SCOPE_REPORT, &rep, err, sizeof err),
               AM_STATUS_INVALID_ARGUMENT);
}

/* `--threads 100000` crashed the CLI; every option comes from the table. */
Test(options, cli_reads_the_table) {
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", "x.safetensors", "-o", "/nonexistent/run",
                       "--threads", "100000", NULL),
               0);
  cr_expect_eq(r.exit_code, 2, "%s", r.err);
  cr_expect(strstr(r.err, "--threads '100000': expected an integer in [0,1024]"), "%s",
            r.err);
  cr_expect_eq(cli_count_lines(r.err), 1, "%s", r.err);
  cli_result_free(&r);
  cr_assert_eq(cli_run(&r, NULL, "analyze", "--help", NULL), 0);
  for (int i = 0; i < am_option_count(); i++) {
    const am_option_info_t *o = am_option_get(i);
    if (o->scope == AM_SCOPE_REPORT || strcmp(o->name, "checksums") == 0)
      continue;
    char flag[64];
    snprintf(flag, sizeof flag, "--%s", o->name);
    for (char *p = flag; *p; p++)
      *p = *p == '_' ? '-' : *p;
    cr_expect(strstr(r.out, flag), "analyze --help lacks %s", flag);
  }
  cr_expect(strstr(r.out, "0..1024"), "%s", r.out);
  cli_result_free(&r);
  cr_assert_eq(cli_run(&r, NULL, "report", "run", "--views", "-1", NULL), 0);
  cr_expect_eq(r.exit_code, 2);
  cr_expect(strstr(r.err, "--views '-1': expected an integer in [0,100000]"), "%s", r.err);
  cli_result_free(&r);
}

/* Found by fuzz_options: a value with a newline broke the one-line message. */
Test(options, control_characters_in_values_stay_out_of_messages) {
  am_settings_t s;
  am_settings_init(&s);
  char err[256];
  cr_assert_eq(am_settings_set(&s, "methods", "rollout\nflow\x1b[2J", err, sizeof err),
               AM_STATUS_INVALID_ARGUMENT);
  cr_expect(strstr(err, "methods 'rollout?flow?[2J'"), "%s", err);
  cr_assert_eq(am_settings_set(&s, "bo\ngus", "1", err, sizeof err),
               AM_STATUS_INVALID_ARGUMENT);
  cr_expect(strstr(err, "bo?gus: unknown option"), "%s", err);
}
