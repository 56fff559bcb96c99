#include "workers/sigbus_guard.h"

#include <cerrno>
#include <cstring>
#include <mutex>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace mother::guard {

namespace {

constexpr size_t kSlots = 512;  // threads reading through a mapping at the same moment
detail::Slot g_slots[kSlots];

// The handler that was installed before ours: a copy that is never modified after publication
// (a re-install publishes a new one and leaks the old, which a handler may still be reading).
std::atomic<const struct sigaction*> g_prev{nullptr};
std::mutex g_install_mu;

long this_tid() {
  thread_local long tid = 0;  // normal context only: the handler calls gettid itself
  if (!tid) tid = long(::syscall(SYS_gettid));
  return tid;
}

// Gives a SIGBUS we do not own to whoever would have had it without us.
void chain(int sig, siginfo_t* si, void* uc) {
  const struct sigaction* p = g_prev.load(std::memory_order_acquire);
  if (p && (p->sa_flags & SA_SIGINFO)) {
    if (p->sa_sigaction) {
      p->sa_sigaction(sig, si, uc);
      return;
    }
  } else if (p && p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN) {
    p->sa_handler(sig);
    return;
  }
  // Ignored and sent by kill(2) / sigqueue: ignore it as asked.
  if (p && !(p->sa_flags & SA_SIGINFO) && p->sa_handler == SIG_IGN && si && si->si_code <= 0) return;
  // The default action (a fault cannot be ignored either): restore it and raise again. SIGBUS is
  // blocked while we run, so the process dies of it as soon as this handler returns, exactly as
  // it would have without us (core dump included).
  struct sigaction d;
  std::memset(&d, 0, sizeof d);
  d.sa_handler = SIG_DFL;
  sigemptyset(&d.sa_mask);
  ::sigaction(sig, &d, nullptr);
  ::raise(sig);
}

void on_sigbus(int sig, siginfo_t* si, void* uc) {
  const int saved_errno = errno;
  const long me = long(::syscall(SYS_gettid));
  const uintptr_t addr = si ? reinterpret_cast<uintptr_t>(si->si_addr) : 0;
  // Only a fault the kernel raised for an access (not kill(2), whose si_addr means nothing).
  if (si && si->si_code > 0) {
    for (auto& s : g_slots) {
      if (s.owner.load(std::memory_order_acquire) != me) continue;
      const uintptr_t lo = s.lo.load(std::memory_order_relaxed), hi = s.hi.load(std::memory_order_relaxed);
      if (hi != 0 && addr >= lo && addr < hi) {
        s.code = si->si_code;
        s.addr = addr;
        siglongjmp(s.jb, 1);
      }
    }
  }
  errno = saved_errno;
  chain(sig, si, uc);
}

bool is_ours(const struct sigaction& a) { return (a.sa_flags & SA_SIGINFO) && a.sa_sigaction == on_sigbus; }

}  // namespace

bool ensure_installed(std::string* why) {
  std::lock_guard<std::mutex> lock(g_install_mu);
  struct sigaction cur;
  if (::sigaction(SIGBUS, nullptr, &cur) != 0) {
    if (why) *why = std::string("cannot query the SIGBUS handler: ") + std::strerror(errno);
    return false;
  }
  if (is_ours(cur)) return true;
  // First install, or someone installed a handler over ours: go in front of it, chaining to it.
  g_prev.store(new struct sigaction(cur), std::memory_order_release);
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;  // no SA_ONSTACK: jump back on the thread's own stack
  sigemptyset(&sa.sa_mask);
  if (::sigaction(SIGBUS, &sa, nullptr) != 0) {
    if (why) *why = std::string("cannot install a SIGBUS handler: ") + std::strerror(errno);
    return false;
  }
  // A sanitizer that owns SIGBUS (handle_sigbus=2) accepts the call and ignores it: check.
  if (::sigaction(SIGBUS, nullptr, &cur) != 0 || !is_ours(cur)) {
    if (why) *why = "the SIGBUS handler could not be installed (another component keeps SIGBUS to itself)";
    return false;
  }
  return true;
}

namespace detail {

Slot* claim() {
  const long me = this_tid();
  thread_local size_t hint = size_t(me) % kSlots;
  for (size_t i = 0; i < kSlots; ++i) {
    Slot& s = g_slots[(hint + i) % kSlots];
    long free_ = 0;
    if (s.owner.load(std::memory_order_relaxed) == 0 &&
        s.owner.compare_exchange_strong(free_, me, std::memory_order_acquire)) {
      hint = (hint + i) % kSlots;
      return &s;
    }
  }
  return nullptr;
}

void release(Slot* s) {
  s->hi.store(0, std::memory_order_relaxed);
  s->lo.store(0, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  s->owner.store(0, std::memory_order_release);
}

void unblock_sigbus() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGBUS);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

}  // namespace detail

}  // namespace mother::guard
