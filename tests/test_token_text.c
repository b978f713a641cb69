/* test_token_text.c — how the report shows token strings (host/report/token_text.c):
 * byte-level BPE decoded (GPT-2's "Ġ" is a space, "Ċ" a newline shown as ↵), everything
 * else as it is (WordPiece "##ing", an accented "é", "[CLS]"). */
#include <criterion/criterion.h>
#include <string.h>

#include "report/report.h"

static const char *show(const char *raw) {
  static char out[256];
  return am_token_display(raw, out, sizeof out);
}

Test(token_text, byte_level_bpe_is_decoded) {
  cr_expect_str_eq(show("\xC4\xA0" "the"), " the");          /* Ġthe */
  cr_expect_str_eq(show("\xC4\x8A"), "\xE2\x86\xB5");      /* Ċ -> ↵ */
  cr_expect_str_eq(show("\xC4\x8A\xC4\x8A"), "\xE2\x86\xB5\xE2\x86\xB5");
  cr_expect_str_eq(show("\xC4\xA0" "caf" "\xC3\x83\xC2\xA9"), " caf" "\xC3\xA9"); /* Ġcafé as bytes */
}

Test(token_text, other_tokens_are_shown_as_they_are) {
  const char *raw[] = {"the", "##ing", "[CLS]", "caf" "\xC3\xA9", "", "<|endoftext|>"};
  for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++)
    cr_expect_eq(show(raw[i]), raw[i], "'%s' was changed", raw[i]);
}
