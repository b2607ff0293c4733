// bpf_core_type_matches() needs clang >= 15 (compiled with clang-19 when it
// is installed; the test is skipped otherwise).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct point {
  long long pad;
  int y;
} __attribute__((preserve_access_index));  // target: same field types by name -> matches

struct point___bad {
  long long pad;
  unsigned int y;  // target's y is a signed int -> no match
} __attribute__((preserve_access_index));

enum color { RED, GREEN };  // enumerator names: a subset of the target's

SEC("socket")
int matches(void *ctx) {
  long r = 0;
  r += bpf_core_type_matches(struct point);
  r += bpf_core_type_matches(struct point___bad) << 1;
  r += bpf_core_type_matches(enum color) << 2;
  return (int)r;
}

char LICENSE[] SEC("license") = "GPL";
