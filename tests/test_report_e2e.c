/* test_report_e2e.c — the report as a person sees it: a dataset whose token strings hold
 * script-injection markup is analysed and reported through the CLI, then the page is
 * opened in headless Chromium (Debian's `chromium`; scripts/test.sh installs it where it
 * can). The rendered DOM must have every section, the head view drawn by the page's
 * script, the hostile tokens as text, an unchanged title (nothing injected ran), and the
 * browser log no console message at all (no script error, no blocked resource); a
 * screenshot is taken and decoded. Skips visibly where Chromium is absent. */
#include <criterion/criterion.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/dataset_builder.h"
#include "support/report_dataset.h"
#include "support/run_cli.h"

static char work[128];
static char chromium[512];
static char paths[16][512];
static int next_path;

static const char *P(const char *name) {
  return dsb_join(paths[next_path++ % 16], sizeof paths[0], work, name);
}

/* The first of chromium / chromium-browser / google-chrome on PATH. */
static void find_chromium(void) {
  static const char *const names[] = {"chromium", "chromium-browser", "google-chrome"};
  const char *path = getenv("PATH");
  chromium[0] = '\0';
  for (size_t k = 0; path && k < sizeof names / sizeof *names && !chromium[0]; k++) {
    const char *p = path;
    while (*p && !chromium[0]) {
      size_t n = strcspn(p, ":");
      snprintf(chromium, sizeof chromium, "%.*s/%s", (int)n, p, names[k]);
      if (access(chromium, X_OK) != 0)
        chromium[0] = '\0';
      p += n + (p[n] == ':');
    }
  }
}

static void setup(void) {
  cr_assert_eq(dsb_tempdir(work, sizeof work, "e2e"), 0);
  find_chromium();
}
static void teardown(void) { dsb_rmtree(work); }
TestSuite(report_e2e, .init = setup, .fini = teardown, .timeout = 400);

/* Runs chromium headless on url with one more flag; the caller frees r. */
static void browse(cli_result_t *r, const char *url, const char *flag, const char *flag2) {
  char profile[600], user_dir[700];
  snprintf(user_dir, sizeof user_dir, "--user-data-dir=%s",
           dsb_join(profile, sizeof profile, work, "profile"));
  const char *argv[] = {"--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--no-first-run",
                        "--disable-dev-shm-usage",
                        user_dir,
                        "--enable-logging=stderr",
                        "--v=0",
                        flag,
                        flag2,
                        url,
                        NULL};
  if (!flag2) { /* keep the list NULL-terminated after the url */
    argv[9] = url;
    argv[10] = NULL;
  }
  cli_options_t o = {.timeout_s = 120, .binary = chromium};
  cr_assert_eq(cli_runv(r, &o, argv), 0, "%s did not start", chromium);
  cr_assert_eq(r->exit_code, 0, "chromium exit %d (timed out %d): %s", r->exit_code,
               r->timed_out, r->err);
}

/* Console lines of the page in chromium's log: "...:CONSOLE..." entries. */
static void no_console_messages(const char *log) {
  for (const char *p = strstr(log, "CONSOLE"); p; p = strstr(p + 1, "CONSOLE")) {
    const char *eol = strchr(p, '\n');
    cr_assert_fail("console message: %.*s", eol ? (int)(eol - p) : 200, p);
  }
  cr_assert_null(strstr(log, "Uncaught"), "uncaught error in the page");
}

static char *title_of(const char *dom) {
  const char *a = strstr(dom, "<title>"), *b = a ? strstr(a, "</title>") : NULL;
  cr_assert(a && b, "no <title>");
  return strndup(a + 7, (size_t)(b - a - 7));
}

static void make_report(const char *run) {
  rds_spec_t spec = {.L = 2,
                     .H = 3,
                     .B = 12,
                     .T = 10,
                     .grads = 1,
                     .saliency = 1,
                     .labels = 1,
                     .varied = 1,
                     .seed = 21};
  const char *data = P("data.safetensors");
  cr_assert_eq(rds_make(&spec, data), 0);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", run, "--quiet", NULL), 0);
  cr_assert_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  cr_assert_eq(cli_run(&r, NULL, "report", run, NULL), 0);
  cr_assert_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
}

Test(report_e2e, page_renders_without_errors_and_tokens_stay_text) {
  if (!chromium[0])
    cr_skip_test("chromium not installed");
  const char *run = P("run");
  make_report(run);
  char url[700];
  snprintf(url, sizeof url, "file://%s/report/index.html", run);
  cli_result_t r;
  browse(&r, url, "--dump-dom", NULL);
  const char *dom = r.out;
  no_console_messages(r.err);
  char *title = title_of(dom);
  cr_assert(strncmp(title, "attnmap report: ", 16) == 0 && !strstr(title, "pwned"),
            "title changed: %s", title);
  free(title);
  static const char *const sections[] = {"id=\"provenance\"", "id=\"heads\"",
                                         "id=\"positions\"",  "id=\"tokens\"",
                                         "id=\"agreement\"",  "id=\"examples\""};
  for (size_t i = 0; i < sizeof sections / sizeof *sections; i++)
    cr_assert(strstr(dom, sections[i]), "section %s missing", sections[i]);
  cr_assert(strstr(dom, "&lt;img src=x onerror=alert(1)&gt;"),
            "hostile token shown as text");
  cr_assert_null(strstr(dom, "<img src=\"x\""), "a token was parsed as an element");
  cr_assert_null(strstr(dom, "onerror=\"alert"), "a token was parsed as an attribute");
  cr_assert(strstr(dom, "&lt;/script&gt;&lt;script&gt;"), "</script> token shown as text");
  cr_assert(strstr(dom, "class=\"hv\"") && strstr(strstr(dom, "class=\"hv\""), "<svg"),
            "the head view was drawn by the page's script");
  cr_assert(strstr(dom, "data-metric=\"kendall\" hidden") ||
                strstr(dom, "data-metric=\"kendall\" hidden=\"\""),
            "the metric switch ran");
  cli_result_free(&r);
  /* an example opened from the tables by its link */
  char *html = dsb_read_file(P("run/report/index.html"), NULL);
  const char *hash = html ? strstr(html, "href=\"#ex-") : NULL;
  cr_assert_not_null(hash);
  char id[32] = "";
  sscanf(hash + 6, "#%31[^\"]", id);
  free(html);
  char url2[800], want[64];
  snprintf(url2, sizeof url2, "%s#%s", url, id);
  browse(&r, url2, "--dump-dom", NULL);
  snprintf(want, sizeof want, "class=\"example\" id=\"%s\">", id);
  cr_assert(strstr(r.out, want), "example %s shown (not hidden)", id);
  no_console_messages(r.err);
  cli_result_free(&r);
}

Test(report_e2e, screenshot) {
  if (!chromium[0])
    cr_skip_test("chromium not installed");
  const char *run = P("run");
  make_report(run);
  char url[700], shot[700], flag[800];
  snprintf(url, sizeof url, "file://%s/report/index.html", run);
  snprintf(flag, sizeof flag, "--screenshot=%s",
           dsb_join(shot, sizeof shot, work, "shot.png"));
  cli_result_t r;
  browse(&r, url, flag, "--window-size=1200,1600");
  no_console_messages(r.err);
  cli_result_free(&r);
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  cr_assert(png_image_begin_read_from_file(&img, shot), "screenshot: %s", img.message);
  img.format = PNG_FORMAT_GRAY;
  cr_assert_eq(img.width, 1200);
  unsigned char *px = malloc(PNG_IMAGE_SIZE(img));
  cr_assert(png_image_finish_read(&img, NULL, px, 0, NULL));
  size_t dark = 0, n = (size_t)img.width * img.height;
  for (size_t i = 0; i < n; i++)
    dark += px[i] < 128;
  cr_assert(dark > n / 100 && dark < n / 2, "a page with text and pictures: %zu/%zu dark",
            dark, n);
  free(px);
}
