// objcli tests: BTF-typed map values, ring buffer and perf buffer records,
// .kconfig values. Per packet: counts in `stats` (a struct value), sends a
// `struct event` to the ring buffer `events` (pinned by name, so another
// process can watch it) and to the perf event array `pevents`.
#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>

enum kind { K_SHORT = 1, K_LONG = 2 };

struct event {
  unsigned int seq;
  unsigned int len;
  enum kind kind;
  unsigned int kver;
  char tag[8];
};

struct stat {
  char name[8];
  unsigned long long packets;
  unsigned long long bytes;
  bool seen_long;
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, unsigned int);
  __type(value, struct stat);
} stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 4096);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
  __uint(key_size, sizeof(int));
  __uint(value_size, sizeof(int));
} pevents SEC(".maps");

extern unsigned int LINUX_KERNEL_VERSION __kconfig;

unsigned int seq = 0;
// Puts struct event into BTF (clang emits only types reachable from globals,
// as libbpf-tools do it) so `--type 'struct event'` can decode records.
struct event *unused_event __attribute__((unused));

SEC("xdp")
int watch_me(struct xdp_md *ctx) {
  unsigned int k = 0;
  struct stat *s = bpf_map_lookup_elem(&stats, &k);
  unsigned int len = ctx->data_end - ctx->data;
  struct event ev = {};
  if (!s) return XDP_ABORTED;
  __builtin_memcpy(s->name, "pkts", 5);
  s->packets++;
  s->bytes += len;
  if (len > 60) s->seen_long = true;
  ev.seq = ++seq;
  ev.len = len;
  ev.kind = len > 60 ? K_LONG : K_SHORT;
  ev.kver = LINUX_KERNEL_VERSION;
  __builtin_memcpy(ev.tag, "ev", 3);
  bpf_ringbuf_output(&events, &ev, sizeof(ev), 0);
  bpf_perf_event_output(ctx, &pevents, BPF_F_CURRENT_CPU, &ev, sizeof(ev));
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
