// Internal: the verifier engine shared by verifier.cpp (driver, control
// flow, pruning, calls), memory.cpp (loads/stores, helper arguments) and
// print.cpp (log text).
//
// How it works: the program is first checked for structure (isa), split
// into subprograms and walked as a graph (every instruction reachable).
// Then one State (registers, stack, frames) is carried through the
// instructions; at a conditional jump whose outcome is unknown the taken
// branch is pushed on a work stack and the fall-through is followed; at an
// exit the next pending branch is popped. At prune points (jump targets,
// instructions after conditional jumps and calls) the current state is
// compared with the checkpoints stored there: if a fully explored
// checkpoint covers it (states_equal) the path stops; otherwise a new
// checkpoint is stored. A checkpoint is fully explored when every path
// through it has ended (branch counters, as in the kernel). Errors are
// raised as a Reject exception inside the engine and become the Verdict.
// Fully explored checkpoints are cleaned of dead registers and stack slots
// before comparison (liveness.cpp); callbacks (callbacks.cpp) and may_goto
// loops return to a forced checkpoint where converged iterations are pruned;
// global functions are verified after the main program, each on its own.
#pragma once

#include <array>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "spec/kfuncs.hpp"
#include "spec/spec.hpp"
#include "verifier/state.hpp"
#include "verifier/verifier.hpp"

namespace userbpf::verifier::detail {

struct Reject {
  int err;
  std::string message;
};

// print.cpp
std::string reg_type_str(const Reg& r);
std::string reg_str(const Reg& r, const Config& cfg);
std::string slot_str(const StackSlot& sl, const Config& cfg);
std::string frame_str(const Frame& f, const Config& cfg, bool only_written);
std::string frame_diff_str(const Frame& before, const Frame& after, const Config& cfg, unsigned read_mask);
std::string insn_str(std::span<const isa::Insn> insns, std::size_t pc, const Config& cfg);

enum class Access : std::uint8_t { Read, Write, Helper };

struct CallMeta {
  int map = -1;               // map of the ConstMapPtr argument
  bool raw_mode = false;      // uninitialised memory argument
  int raw_regno = -1;
  std::int64_t raw_size = 0;
  std::uint64_t const_key = 0;
  bool has_const_key = false;
  std::int64_t alloc_size = -1;  // ARG_CONST_ALLOC_SIZE_OR_ZERO value
  std::uint32_t release_ref = 0; // ref_obj_id passed to an OBJ_RELEASE argument
  int callback = -1;             // ARG_PTR_TO_FUNC: the callback subprogram
  int lock_map = -1;             // ARG_PTR_TO_SPIN_LOCK: the lock's map and value id
  std::uint32_t lock_id = 0;
  std::uint32_t ref_obj_id = 0;  // a referenced argument (socket casts keep it)
  int dynptr_regno = -1;         // the dynptr argument (ARG_PTR_TO_DYNPTR)
  bool dynptr_release = false;   // OBJ_RELEASE dynptr argument
  std::uint32_t dynptr_id = 0, dynptr_ref = 0;  // id and reference of an initialised dynptr argument
  int timer_map = -1;            // ARG_PTR_TO_TIMER: the timer's map (timers.cpp)
};

class Engine {
 public:
  Engine(std::span<const isa::Insn> insns, const Config& cfg, Verdict& out);
  void run();

 private:
  struct Node {
    State st;
    std::uint32_t branches = 1;
    std::uint32_t parent = ~0u;
    std::uint32_t hit = 0, miss = 0;
    std::size_t idx = 0;          // instruction of the checkpoint
    bool cleaned = false;         // dead registers/slots cleared (liveness.cpp)
    // every scalar of this checkpoint and of all its ancestors is precise
    // (mark_all_precise stops here: the walk stays amortised O(1) per node)
    bool all_precise = false;
    std::vector<HistEntry> hist;  // the path segment that led to this checkpoint
  };
  // Stack liveness of one function instance (call chain), liveness.cpp.
  struct LiveMasks {
    std::uint64_t may_read = 0, must_write = 0, must_write_acc = 0, live_before = 0;
  };
  struct LiveInstance {
    std::vector<std::uint32_t> chain;  // callsites of frames 1..d, then the subprogram start
    std::size_t start = 0, n = 0;      // the subprogram's instructions
    std::vector<LiveMasks> masks;      // [frame][insn - start]
    std::vector<std::uint8_t> must_write_set;
    bool updated = false, must_write_dropped = false;
    LiveMasks& at(std::size_t frame, std::size_t idx) { return masks[frame * n + (idx - start)]; }
    [[nodiscard]] const LiveMasks& at(std::size_t frame, std::size_t idx) const {
      return masks[frame * n + (idx - start)];
    }
  };
  struct Pending {
    State st;
    std::size_t idx;
    std::size_t prev;
    std::size_t log_pos;
  };

  // ---- driver (verifier.cpp)
  void check_cfg();
  void explore(State cur, std::size_t idx);     // every path from this state
  State global_entry_state(std::size_t subprog);  // a global function's arguments from its BTF signature
  void finish();                                // facts of an accepted program
  bool prune_or_checkpoint(State& cur, std::size_t idx);
  void end_path(State& cur);
  bool next_branch(State& cur, std::size_t& idx, std::size_t& prev);  // false: no pending branch
  void push_branch(State st, std::size_t idx, std::size_t prev);  // st: moved into the work stack
  Pending pop_branch();
  // Memory of stored states (checkpoints and pending branches), charged
  // against Config::memory_limit (ENOMEM beyond it).
  static std::uint64_t state_bytes(const State& st);
  void charge_states(std::uint64_t bytes);
  std::uint64_t state_bytes_ = 0;
  long step(State& st, std::size_t idx);  // next index, -1: path ended
  long do_jump(State& st, std::size_t idx, const isa::Insn& in);
  long do_call_local(State& st, std::size_t idx, const isa::Insn& in);
  long call_global(State& st, std::size_t idx, std::size_t subprog);
  long do_exit(State& st, std::size_t idx);
  void do_lddw(State& st, std::size_t idx, const isa::Insn& in);
  int resolve_lddw(const isa::Insn& in);
  void check_stack_depths();
  // ---- liveness (liveness.cpp)
  void compute_live_regs();
  std::vector<std::uint32_t> callchain(const State& st, std::size_t depth) const;
  std::size_t live_instance(const std::vector<std::uint32_t>& chain);
  std::size_t cur_live_instance(const State& st);
  void live_mark_read(const State& st, int frameno, std::uint64_t mask);
  void live_mark_write(int frameno, std::uint64_t mask);
  void live_commit_writes(std::size_t inst, std::size_t idx);
  void live_update_instance(std::size_t inst);
  void live_update(const State& st);
  bool slot_alive(const State& st, std::size_t idx, std::size_t frameno, std::size_t spi);
  void clean_state(State& st, std::size_t idx);
  // ---- precision (precision.cpp)
  void mark_precise(State& st, unsigned regno);
  void mark_precise_masks(State& st, std::uint32_t reg_mask, std::uint64_t stack_mask);
  void mark_all_precise(State& st);
  void propagate_precision(State& cur, const State& old);
  struct Masks {  // registers and stack slots to backtrack, per frame
    std::array<std::uint32_t, kMaxFrames> regs{};
    std::array<std::uint64_t, kMaxFrames> stack{};
  };
  void mark_precise_frames(State& st, Masks m);
  bool backtrack_insn(const HistEntry& h, Masks& m, std::size_t& frame, long subseq);
  [[noreturn]] void reject(int err, std::string msg);
  void log(const std::string& s);

  // ---- registers and ALU (alu.cpp)
  Reg& reg(State& st, unsigned r) { return st.cur().regs[r]; }
  void check_read(State& st, unsigned r);
  void check_write(unsigned r);
  void do_alu(State& st, const isa::Insn& in);
  void ptr_alu(State& st, const isa::Insn& in, Reg& dst, const Reg& ptr, const Reg& off, unsigned op,
               bool ptr_is_dst);
  bool check_reg_sane_offset(const Reg& off, const Reg& ptr);
  void sync_linked(State& st, const Reg& known);
  void mark_ptr_or_null(State& st, std::uint32_t id, bool is_null);
  static void widen_imprecise(State& cur, const State& old);
  void release_reference(State& st, std::uint32_t ref_obj_id);
  void check_no_refs(const State& st, const char* what);
  void find_good_pkt_pointers(State& st, const Reg& pkt, bool right_open);
  void clear_pkt_pointers(State& st);
  std::uint32_t new_id() { return ++id_gen_; }

  // ---- memory (memory.cpp)
  void do_mem(State& st, std::size_t idx, const isa::Insn& in);
  void do_atomic(State& st, std::size_t idx, const isa::Insn& in);
  void do_ld_abs(State& st, const isa::Insn& in);
  // Checks an access of `size` bytes at regs[regno] + off; on a read into
  // value_regno (>= 0) sets that register.
  void check_mem_access(State& st, std::size_t idx, unsigned regno, std::int32_t off, unsigned size, Access t,
                        int value_regno, const Reg* value, bool sign_ext, bool is_st_imm, std::int32_t st_imm);
  void check_ctx_access(State& st, std::size_t idx, unsigned regno, std::int32_t off, unsigned size, Access t,
                        int value_regno);
  void check_mem_region(State& st, unsigned regno, std::int64_t off, std::int64_t size, std::uint64_t mem_size,
                        bool zero_ok);
  void mem_error(const Reg& r, unsigned regno, std::int64_t off, std::int64_t size, std::uint64_t mem_size);
  void check_packet_access(State& st, unsigned regno, std::int64_t off, std::int64_t size, bool zero_ok);
  void check_stack_bounds(State& st, unsigned regno, std::int64_t off, std::int64_t size, Access t);
  void stack_write(State& st, unsigned regno, std::int64_t off, unsigned size, const Reg* value, bool is_st_imm,
                   std::int32_t st_imm);
  void stack_read(State& st, unsigned regno, std::int64_t off, unsigned size, int value_regno);
  void check_stack_range_init(State& st, unsigned regno, std::int64_t off, std::int64_t size, bool zero_ok,
                              bool clobber, CallMeta* meta);
  Frame& stack_frame(State& st, const Reg& r) { return st.frames[static_cast<std::size_t>(r.frameno)]; }
  void note_stack_depth(const State& st, const Reg& r, std::int64_t lowest);

  // ---- helper calls (memory.cpp)
  void do_helper_call(State& st, std::size_t idx, const isa::Insn& in);
  void check_helper_arg(State& st, const spec::HelperProto& p, unsigned argno, CallMeta& meta);
  void check_helper_mem(State& st, unsigned regno, std::int64_t size, bool zero_ok, bool write, CallMeta* meta);
  void check_map_compat(const spec::HelperProto& p, int map);
  void spin_lock_call(State& st, const spec::HelperProto& p, const CallMeta& meta);
  void check_lock_field(const Reg& r, std::int64_t off, std::int64_t size);
  // ---- socket references and dynptrs (sockets.cpp, dynptr.cpp)
  void check_sock_access(State& st, std::size_t idx, unsigned regno, std::int64_t off, unsigned size, Access t,
                         int value_regno);
  void sock_arg(State& st, const spec::HelperProto& p, unsigned argno, CallMeta& meta);
  void sock_return(State& st, std::size_t idx, const spec::HelperProto& p, const CallMeta& meta);
  int dynptr_spi(const Reg& r);
  void dynptr_arg(State& st, std::size_t idx, const spec::HelperProto& p, unsigned argno, CallMeta& meta);
  void dynptr_release(State& st, const CallMeta& meta);
  bool dynptr_destroy(State& st, Frame& fr, std::size_t spi);  // false: a referenced dynptr (not overwritable)
  void dynptr_return(State& st, const CallMeta& meta);
  // ---- kfuncs and open-coded iterators (kfuncs.cpp)
  void check_kfunc_ids();
  void do_kfunc_call(State& st, std::size_t idx, const isa::Insn& in);
  int iter_arg(State& st, std::size_t idx, const spec::KfuncProto& p, unsigned regno);
  void iter_next(State& st, std::size_t idx, std::size_t frameno, std::size_t spi);
  const State* find_prev_entry(const State& st, std::size_t idx) const;
  static bool iter_active(const State& st);  // r1 points to an active iterator (at iter_next)
  std::vector<bool> iter_next_;  // calls of a KF_ITER_NEXT kfunc (loop heads: forced checkpoints)
  // ---- callbacks (callbacks.cpp)
  void push_callback(State& st, std::size_t idx, const spec::HelperProto& p, const CallMeta& meta);
  long callback_exit(State& st);
  [[noreturn]] void bad_return(const char* where, const Reg& r0, std::int32_t min, std::int32_t max);
  // ---- bpf_timer (timers.cpp)
  void check_map_field_pointer(const Reg& r, unsigned regno, std::string_view name);
  static void set_map_elem_args(Frame& callee, int map);
  void check_timer_arg(State& st, unsigned regno, CallMeta& meta);
  void check_timer_map(const Reg& map_reg, unsigned regno, const CallMeta& meta);
  void check_timer_field(const Reg& r, std::int64_t off, std::int64_t size);
  void check_timer_prog_type(const MapDesc& md);
  void push_async_callback(State& st, std::size_t idx, const CallMeta& meta);
  long async_callback_exit(State& st);
  static bool is_async_callback_call(const isa::Insn& in);

  std::span<const isa::Insn> insns_;
  const Config& cfg_;
  Verdict& out_;
  const spec::ProgType* pt_ = nullptr;
  std::vector<std::size_t> subprog_start_;
  std::vector<int> subprog_of_;
  std::vector<bool> prune_point_;
  std::vector<bool> jmp_point_;
  std::vector<bool> calls_callback_;  // helper calls with a callback argument (loop checkpoints)
  std::vector<const FuncSig*> global_;  // per subprogram: its BTF signature when global
  std::vector<bool> called_;            // global subprograms called by verified code
  std::set<std::size_t> verified_;      // global subprograms verified on their own      // instructions the kernel records in the jump history
  std::uint32_t explored_size_ = 0;  // checkpoints still in the lists (peak_states)
  std::vector<std::vector<std::uint32_t>> explored_;
  std::deque<Node> nodes_;
  std::vector<Pending> stack_;
  std::vector<std::int64_t> depth_;  // per subprogram: deepest stack byte used
  std::vector<std::vector<int>> callees_;
  std::vector<std::int8_t> ctx_fact_;  // per insn: 1 = ctx access recorded
  // per load/store insn: the base pointer kind seen first (0 none, 1 context,
  // 2 anything else); the kernel's "same insn cannot be used with different
  // pointers" (context accesses are rewritten per instruction).
  std::vector<std::int8_t> ptr_kind_;
  void check_same_ptr_kind(std::size_t idx, RegType base);
  std::vector<std::int8_t> access_;    // per insn: 1 = every checked access in bounds, -1 = not provable
  std::vector<std::uint16_t> live_regs_;  // per insn: registers live before it
  std::deque<LiveInstance> live_;
  std::map<std::vector<std::uint32_t>, std::size_t> live_index_;
  std::size_t cur_live_ = ~std::size_t{0};  // instance of the current state's innermost frame
  std::array<std::uint64_t, kMaxFrames> live_writes_{};  // full-slot writes of the current insn, per frame
  std::uint32_t id_gen_ = 0;
  std::uint64_t jmps_ = 0, prev_jmps_ = 0, prev_insns_ = 0;
  std::int16_t last_spi_ = -1;       // stack slot of the current insn's fill/spill (history)
  std::uint8_t last_spi_frame_ = 0;
  std::size_t cur_idx_ = 0;
  bool printed_state_ = false;
};

}  // namespace userbpf::verifier::detail
