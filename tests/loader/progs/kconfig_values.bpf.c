// .kconfig externs of every type libbpf supports, with real values
// (externs_test.cpp): bool, tristate, char, ints of several sizes and
// signedness, a string, the LINUX_* virtual externs, weak ones that are
// missing. The program returns a mix so that every extern is used.
#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>


extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern bool LINUX_HAS_SYSCALL_WRAPPER __kconfig;
extern bool LINUX_HAS_BPF_COOKIE __kconfig __weak;
extern bool CONFIG_UB_BOOL __kconfig;
extern enum libbpf_tristate CONFIG_UB_TRI_Y __kconfig;
extern enum libbpf_tristate CONFIG_UB_TRI_M __kconfig;
extern char CONFIG_UB_CHAR __kconfig;
extern int CONFIG_UB_INT __kconfig;
extern unsigned short CONFIG_UB_U16 __kconfig;
extern long long CONFIG_UB_NEG __kconfig;
extern unsigned long long CONFIG_UB_HEX __kconfig;
extern char CONFIG_UB_STR[8] __kconfig;
extern int CONFIG_UB_MISSING __kconfig __weak;
extern bool CONFIG_UB_NOT_SET __kconfig __weak;

SEC("socket")
int kcfg_values(struct __sk_buff *skb) {
  long r = LINUX_KERNEL_VERSION + LINUX_HAS_SYSCALL_WRAPPER + LINUX_HAS_BPF_COOKIE;
  r += CONFIG_UB_BOOL + CONFIG_UB_TRI_Y + CONFIG_UB_TRI_M + CONFIG_UB_CHAR + CONFIG_UB_INT + CONFIG_UB_U16;
  r += CONFIG_UB_NEG + CONFIG_UB_HEX + CONFIG_UB_STR[0] + CONFIG_UB_STR[7] + CONFIG_UB_MISSING + CONFIG_UB_NOT_SET;
  return (int)r;
}

char LICENSE[] SEC("license") = "GPL";
