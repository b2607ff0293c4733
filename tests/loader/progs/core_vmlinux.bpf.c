// CO-RE against the running kernel's BTF (/sys/kernel/btf/vmlinux).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct___mine {
  int pid;
  int tgid;
} __attribute__((preserve_access_index));

SEC("kprobe/do_nanosleep")
int read_pid(void *ctx) {
  struct task_struct___mine *t = (void *)bpf_get_current_task();
  return BPF_CORE_READ(t, tgid) + bpf_core_field_size(t->pid);
}

char LICENSE[] SEC("license") = "GPL";
