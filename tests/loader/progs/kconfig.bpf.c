// .kconfig and .ksyms externs.
#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig __weak;
extern int CONFIG_HZ __kconfig __weak;
extern const void bpf_prog_active __ksym __weak;

SEC("socket")
int kcfg(struct __sk_buff *skb) {
  if (!CONFIG_BPF_SYSCALL) return 0;
  return (int)(LINUX_KERNEL_VERSION >> 16) + CONFIG_HZ + (int)((long)&bpf_prog_active & 1);
}

char LICENSE[] SEC("license") = "GPL";
