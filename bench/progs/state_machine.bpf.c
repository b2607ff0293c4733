/* Branches: a state machine that parses 1024 bytes of "Name: value\r\n"
 * header lines byte by byte (a switch over states, character classes),
 * counting lines, malformed lines and hashing the header names. */
#include "common.h"

enum { S_NAME_START, S_NAME, S_SPACE, S_VALUE, S_CR, S_BAD };

BENCH_ENTRY long prog(u8 *mem, long len) {
  u32 state = S_NAME_START;
  u32 lines = 0, bad = 0, values = 0;
  u32 hash = 0, names = 0;
  (void)len;
  for (u32 i = 0; i < 1024; i++) {
    u8 c = mem[i];
    switch (state) {
      case S_NAME_START:
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') {
          hash = (c | 0x20);
          state = S_NAME;
        } else {
          state = S_BAD;
        }
        break;
      case S_NAME:
        if (c == ':') {
          names += hash;
          state = S_SPACE;
        } else if (((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '-' || (c >= '0' && c <= '9')) {
          hash = hash * 33 + (c | 0x20);
        } else {
          state = S_BAD;
        }
        break;
      case S_SPACE:
        if (c == ' ') break;
        state = S_VALUE;
        /* fall through */
      case S_VALUE:
        if (c == '\r') state = S_CR;
        else if (c < 0x20) state = S_BAD;
        else values++;
        break;
      case S_CR:
        if (c == '\n') {
          lines++;
          state = S_NAME_START;
        } else {
          state = S_BAD;
        }
        break;
      default: /* S_BAD: skip to the end of the line */
        if (c == '\n') {
          bad++;
          state = S_NAME_START;
        }
        break;
    }
  }
  return (long)(((u64)lines << 48) | ((u64)bad << 32) | ((u64)values << 16)) ^ names;
}
