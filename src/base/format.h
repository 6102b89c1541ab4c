/* format.h: building a line of text in a fixed buffer, for every message
 * hakmem writes itself (misuse and crash reports, the statistics, the
 * start-up line): bounded, never allocating, calling nothing but its own
 * loops, so that it is safe in a signal handler and in a process whose
 * heap is corrupted. */
#ifndef HK_FORMAT_H
#define HK_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* Text is appended to buf[0, cap); what does not fit is cut off. One byte
 * beyond cap is kept for hk_fmt_newline, so a cut line still ends. */
struct hk_fmt {
  char *buf;
  size_t cap;
  size_t len;
  int cut; /* something did not fit */
};

/* A formatter over buf[0, size), size >= 1. The buffer starts as an empty
 * string, so a line that nothing was appended to still reads as one. */
static inline struct hk_fmt hk_fmt_over(char *buf, size_t size) {
  struct hk_fmt f = {buf, size - 1, 0, 0};
  buf[0] = '\0';
  return f;
}

static inline size_t hk_fmt_room(const struct hk_fmt *f) {
  return f->len < f->cap ? f->cap - f->len : 0;
}

void hk_fmt_str(struct hk_fmt *f, const char *s);
void hk_fmt_char(struct hk_fmt *f, char c);
/* `v` in decimal. */
void hk_fmt_dec(struct hk_fmt *f, uint64_t v);
/* `v` in hexadecimal, with "0x". */
void hk_fmt_hex(struct hk_fmt *f, uintptr_t v);
/* A '\n', in the byte kept for it when the line is full. */
void hk_fmt_newline(struct hk_fmt *f);

#endif
