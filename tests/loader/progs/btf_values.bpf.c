// Maps with BTF-typed keys and values for the BTF value formatter
// (btf_format_test.cpp): ints of every size and signedness, bool, char
// strings and non-strings, nested structs, arrays, unions, an anonymous
// union, enums, a typedef, a pointer; bitfields in a separate map (bpftool
// prints them as bare hex, which its JSON parser can't read back).
#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>

enum color { RED = 0, GREEN = 1, BLUE = 7 };
typedef unsigned int u32_t;

struct inner {
  short s;
  unsigned char b;
};

struct key {
  u32_t id;
  char tag[4];
};

struct value {
  unsigned long long u64;
  long long s64;
  int s32;
  unsigned short u16;
  signed char s8;
  bool flag;
  char name[12];
  char raw[4];
  int arr[3];
  struct inner in[2];
  union {
    unsigned int as_int;
    unsigned char as_bytes[4];
  } un;
  union {
    int anon_a;
    unsigned int anon_b;
  };
  enum color color;
  void *ptr;
};

struct bits {
  unsigned int a : 3;
  int b : 5;
  unsigned int c : 24;
  enum color col : 4;
  unsigned long long big : 40;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 8);
  __type(key, struct key);
  __type(value, struct value);
} typed SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2);
  __type(key, int);
  __type(value, struct bits);
} bitmap SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, int);
  __type(value, struct inner);
} pcpu SEC(".maps");

int global_counter = 5;
const char greeting[8] = "hi";

SEC("socket")
int touch(struct __sk_buff *skb) {
  int k = 0;
  struct bits *b = bpf_map_lookup_elem(&bitmap, &k);
  struct inner *p = bpf_map_lookup_elem(&pcpu, &k);
  struct key key = {};
  struct value *v = bpf_map_lookup_elem(&typed, &key);
  global_counter++;
  return (b ? b->a : 0) + (p ? p->s : 0) + (v ? v->s32 : 0) + greeting[0];
}

char LICENSE[] SEC("license") = "GPL";
