// One program per SEC() form: "?" prefix, "+" forms with extra components.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define PROG(sec, name) \
  SEC(sec) int name(void *ctx) { return 0; }

PROG("?xdp", opt_xdp)
PROG("kprobe/do_unlinkat", kp)
PROG("kretprobe/do_unlinkat", krp)
PROG("uprobe//usr/lib/libc.so.6:malloc", up)
PROG("tp/syscalls/sys_enter_openat", tp)
PROG("tracepoint/sched/sched_switch", tp2)
PROG("raw_tp/sched_switch", rtp)
PROG("xdp.frags", frags)
PROG("xdp/devmap", devmap)
PROG("tc/ingress", tc_in)
PROG("tcx/egress", tcx_eg)
PROG("cgroup_skb/ingress", cg_in)
PROG("cgroup/connect4", cg_conn4)
PROG("fentry/do_unlinkat", fent)
PROG("lsm.s/file_open", lsm_s)
PROG("sk_skb/stream_parser", parser)
PROG("perf_event", perf)
PROG("my_custom_section", custom)

char LICENSE[] SEC("license") = "GPL";
