/* mpi_report.c — see mpi_report.h. */
#include "mpi/mpi_report.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

am_status am_mpi_open(const am_mpi_rank_t *me, const am_mpi_args_t *a, am_ctx_t **ctx,
                      am_dataset_t **ds, am_mpi_report_t *mine) {
  snprintf(mine->host, sizeof mine->host, "%s", me->host);
  snprintf(mine->gpu, sizeof mine->gpu, "%s", me->gpu);
  am_status st = am_ctx_create(&a->set->ctx, ctx, mine->msg, sizeof mine->msg);
  if (st == AM_STATUS_OK) {
    snprintf(mine->backend, sizeof mine->backend, "%s", am_ctx_backend_name(*ctx));
    const char *dev = am_ctx_device_name(*ctx);
    snprintf(mine->device, sizeof mine->device, "%s", dev ? dev : "");
    st = am_dataset_open(*ctx, a->paths, a->npaths, ds);
    if (st != AM_STATUS_OK)
      snprintf(mine->msg, sizeof mine->msg, "%s", am_last_error(*ctx));
  }
  mine->status = st;
  return st;
}

static int exit_code(am_status st) {
  return st == AM_STATUS_OK ? AM_EXIT_OK
         : (st == AM_STATUS_BAD_INPUT || st == AM_STATUS_INVALID_ARGUMENT)
             ? AM_EXIT_USAGE
             : AM_EXIT_FAILURE;
}

/* The lowest rank that failed of its own (not stopped by another's failure), or -1. */
static int first_failure(const am_mpi_report_t *reports, int size) {
  for (int r = 0; r < size; r++)
    if (reports[r].status != AM_STATUS_OK && !reports[r].stopped)
      return r;
  for (int r = 0; r < size; r++) /* only stopped ones: cannot happen, but never publish */
    if (reports[r].status != AM_STATUS_OK)
      return r;
  return -1;
}

/* provenance.parts: the engine, the ranks with their hosts, GPUs, backends, devices,
 * examples and ranges, and the distinct hosts. */
static char *parts_json(const am_mpi_rank_t *me, const am_mpi_report_t *reports,
                        const int64_t *ranges, const int *counts) {
  json_t *per = json_array(), *hosts = json_array();
  for (int r = 0, at = 0; r < me->size; at += counts[r], r++) {
    json_t *iv = json_array();
    for (int i = 0; i < counts[r]; i++)
      json_array_append_new(iv, json_pack("[I,I]", (json_int_t)ranges[2 * (at + i)],
                                          (json_int_t)ranges[2 * (at + i) + 1]));
    const am_mpi_report_t *p = &reports[r];
    json_array_append_new(per,
                          json_pack("{s:i,s:s,s:s,s:s,s:s,s:I,s:o,s:f}", "rank", r, "host",
                                    p->host, "gpu", p->gpu, "backend", p->backend, "device",
                                    p->device, "examples", (json_int_t)p->done, "ranges",
                                    iv, "seconds", p->seconds));
    int seen = 0;
    for (size_t h = 0; h < json_array_size(hosts); h++)
      seen |= strcmp(json_string_value(json_array_get(hosts, h)), p->host) == 0;
    if (!seen)
      json_array_append_new(hosts, json_string(p->host));
  }
  json_t *doc = json_pack("{s:s,s:i,s:o,s:o}", "engine", "mpi", "ranks", me->size, "hosts",
                          hosts, "per_rank", per);
  char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  return text;
}

int am_mpi_conclude(const am_mpi_rank_t *me, const am_mpi_args_t *a, am_ctx_t *ctx,
                    am_dataset_t *ds, am_job_t *job, const am_mpi_report_t *reports,
                    const int64_t *ranges, const int *counts) {
  int bad = first_failure(reports, me->size);
  if (bad >= 0) { /* the one error of the job, naming the rank */
    const am_mpi_report_t *p = &reports[bad];
    fprintf(stderr, "attnmap: rank %d of %d (%s): %s\n", bad, me->size, p->host,
            p->msg[0] ? p->msg : am_status_str((am_status)p->status));
    am_job_close(job, (am_status)p->status);
    return exit_code((am_status)p->status);
  }
  char *prov = parts_json(me, reports, ranges, counts);
  am_status st = prov ? am_job_finish(job, prov) : AM_STATUS_OUT_OF_MEMORY;
  free(prov);
  int code = st == AM_STATUS_OK ? AM_EXIT_OK : am_cli_fail(ctx, st);
  am_job_close(job, st);
  if (st == AM_STATUS_OK && !a->quiet) {
    am_dataset_info_t info;
    am_dataset_get_info(ds, &info);
    char note[1024];
    am_cli_target_note(ds, a->target_arg, note, sizeof note);
    fprintf(stderr, "attnmap: wrote %s (%lld examples, %d ranks, backend %s, %s)\n",
            a->output, (long long)info.examples, me->size, am_ctx_backend_name(ctx), note);
  }
  return code;
}

int am_mpi_early_end(const am_mpi_args_t *a, am_ctx_t *ctx, am_status st, int complete,
                     const am_mpi_report_t *mine) {
  (void)ctx;
  if (st != AM_STATUS_OK) {
    fprintf(stderr, "attnmap: rank 0 (%s): %s\n", mine->host,
            mine->msg[0] ? mine->msg : am_status_str(st));
    return exit_code(st);
  }
  if (complete)
    fprintf(stderr, "attnmap: %s is already complete with these inputs and options\n",
            a->output);
  return AM_EXIT_OK;
}
