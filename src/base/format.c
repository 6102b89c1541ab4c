/* format.c: bounded text building (see base/format.h). */
#include "base/format.h"

void hk_fmt_char(struct hk_fmt *f, char c) {
  if (f->len < f->cap)
    f->buf[f->len++] = c;
  else
    f->cut = 1;
}

void hk_fmt_str(struct hk_fmt *f, const char *s) {
  while (*s)
    hk_fmt_char(f, *s++);
}

/* The digits of v in `base` (10 or 16), most significant first. */
static void put_digits(struct hk_fmt *f, uint64_t v, unsigned base) {
  char digits[20]; /* UINT64_MAX has 20 decimal digits */
  unsigned n = 0;
  do {
    digits[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v);
  while (n > 0)
    hk_fmt_char(f, digits[--n]);
}

void hk_fmt_dec(struct hk_fmt *f, uint64_t v) { put_digits(f, v, 10); }

void hk_fmt_hex(struct hk_fmt *f, uintptr_t v) {
  hk_fmt_str(f, "0x");
  put_digits(f, v, 16);
}

void hk_fmt_newline(struct hk_fmt *f) {
  if (f->len <= f->cap)
    f->buf[f->len++] = '\n';
  else
    f->cut = 1;
}
