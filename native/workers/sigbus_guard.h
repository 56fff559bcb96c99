// A per-thread SIGBUS guard for reads through file mappings (docs/robustness.md, "Memory-mapped
// reading"). A mapped file that shrinks under us turns the next access of a page past its new end
// into SIGBUS, which by default kills the whole process. guard::run(lo, len, f) runs f() with the
// calling thread's guard armed for the address range [lo, lo + len): a SIGBUS raised by this thread
// at an address in that range jumps (siglongjmp) back out of f() and run() returns the fault's
// si_code, so the caller can throw an ordinary E_IO_TRUNCATED. Any other SIGBUS (another thread, no
// guard armed, an address outside the range, a kill(2)) goes to the handler that was installed
// before ours (Node's, the sanitizer's, or the default action, which still kills the process).
//
// f() must be plain reading code: kernel calls on raw pointers, no allocation, no locks, no objects
// with destructors, since a fault abandons its frames without unwinding them. (An exception it
// throws anyway disarms the guard and propagates.)
//
// The guard state lives in a fixed table of slots (one per thread while armed) that the handler
// scans with async-signal-safe atomic loads: no thread_local lookups (which may allocate in a
// dlopen-ed library) and no locks in the handler.
#pragma once
#include <atomic>
#include <csetjmp>
#include <setjmp.h>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <string>

namespace mother::guard {

// Installs our SIGBUS handler once per process (chaining to the previous one), and on later calls
// checks that it is still installed: if someone replaced it since, ours is installed again in
// front of theirs. Returns false, with the reason in `why`, when the handler cannot be installed
// (e.g. a sanitizer run with handle_sigbus=2 keeps SIGBUS to itself): mapped reads are then unsafe
// and the caller must read with pread. Thread-safe.
bool ensure_installed(std::string* why);

namespace detail {
struct alignas(64) Slot {
  std::atomic<long> owner{0};          // kernel thread id holding the slot, 0: free
  std::atomic<uintptr_t> lo{0}, hi{0};  // armed range; hi == 0: not armed
  volatile int code = 0;                // si_code of the fault that jumped out
  volatile uintptr_t addr = 0;          // its address
  sigjmp_buf jb;
};
Slot* claim();           // nullptr when every slot is taken (the caller falls back to pread)
void release(Slot* s);   // disarms and frees
void unblock_sigbus();   // after a jump out of the handler (the mask was not restored)
}  // namespace detail

// What run() saw: ok, a fault (si_code and address), or no guard available (no slot free).
struct Outcome {
  enum Kind { Ok, Fault, NoGuard } kind = Ok;
  int code = 0;
  uintptr_t addr = 0;
};

template <class F>
Outcome run(const void* lo, size_t len, F&& f) {
  detail::Slot* const s = detail::claim();
  if (!s) return {Outcome::NoGuard, 0, 0};
  if (sigsetjmp(s->jb, 0) != 0) {  // 0: no signal mask saved on the common path (no syscall)
    detail::unblock_sigbus();
    Outcome o{Outcome::Fault, s->code, s->addr};
    detail::release(s);
    return o;
  }
  s->lo.store(reinterpret_cast<uintptr_t>(lo), std::memory_order_relaxed);
  s->hi.store(reinterpret_cast<uintptr_t>(lo) + len, std::memory_order_relaxed);
  // The handler runs on this thread: a signal fence keeps the compiler from moving the reads of
  // the mapping out of the armed window.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  try {
    f();
  } catch (...) {  // f should not throw; if it does, the slot must not stay armed
    detail::release(s);
    throw;
  }
  std::atomic_signal_fence(std::memory_order_seq_cst);
  detail::release(s);
  return {};
}

}  // namespace mother::guard
