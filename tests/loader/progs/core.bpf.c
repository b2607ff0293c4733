// CO-RE relocations on locally defined structs (preserve_access_index),
// resolved against core_target.bpf.c's BTF, and on a task_struct flavor
// resolved against vmlinux.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct point {
  int x;
  int y;
  unsigned int flags : 3;
  unsigned int mode : 5;
  long long big;
  unsigned long long ubig;
} __attribute__((preserve_access_index));

struct point___v2 {
  int y;
  char missing_field;
} __attribute__((preserve_access_index));

enum color { RED = 1, GREEN = 2, BLUE = 4 };
enum color___old { RED___old = 1, PURPLE___old = 9 };

struct gone { int a; } __attribute__((preserve_access_index));

SEC("socket")
int core_fields(struct __sk_buff *skb) {
  struct point *p = (void *)(long)skb->data;
  long r = 0;
  r += BPF_CORE_READ(p, y);
  r += BPF_CORE_READ(p, big);
  r += BPF_CORE_READ_BITFIELD_PROBED(p, mode);
  r += bpf_core_field_size(p->big);
  if (bpf_core_field_exists(((struct point___v2 *)p)->missing_field)) r += 100;
  r += bpf_core_field_exists(p->x);
  return (int)r;
}

SEC("socket")
int core_types(struct __sk_buff *skb) {
  long r = 0;
  r += bpf_core_type_exists(struct point);
  r += bpf_core_type_size(struct point) << 4;
  r += bpf_core_enum_value(enum color, BLUE) << 8;
  if (bpf_core_enum_value_exists(enum color___old, PURPLE___old)) r += 1 << 12;
  if (bpf_core_type_exists(struct gone)) r += 1 << 16;
  r += (long)bpf_core_type_id_kernel(struct point) << 20;
  r += (long)bpf_core_type_id_local(struct point) << 40;
  return (int)(r ^ (r >> 32));
}

SEC("socket")
int core_poison(struct __sk_buff *skb) {
  struct gone *g = (void *)(long)skb->data;
  return BPF_CORE_READ(g, a);
}

// Direct loads carry the relocation on the LDX itself: the access size
// follows the target's field size when that is safe (unsigned), and the
// instruction is poisoned when it is not (signed field changed size).
SEC("socket")
int core_direct(struct __sk_buff *skb) {
  struct point *p = (void *)(long)skb->data;
  return (int)p->ubig + p->y;
}

SEC("socket")
int core_direct_signed(struct __sk_buff *skb) {
  struct point *p = (void *)(long)skb->data;
  return (int)p->big;
}

char LICENSE[] SEC("license") = "GPL";
