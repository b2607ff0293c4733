/* Classic packet access (LD_ABS / LD_IND) in a socket filter. */
#include "common.h"

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

SEC("socket")
int legacy(struct __sk_buff *skb) {
  if (load_half(skb, 12) != 0x0800) return 0;
  u32 ihl = (load_byte(skb, 14) & 0x0f) * 4;
  u32 proto = load_byte(skb, 23);
  if (proto != 6 && proto != 17) return 0;
  u32 dport = load_half(skb, 14 + ihl + 2);
  u32 saddr = load_word(skb, 26);
  return (dport == 53 || saddr == 0x0a000001) ? -1 : 0;
}

char _license[] SEC("license") = "GPL";
