#include "cli/interrupt.h"

#include <execinfo.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>

#include "io/atomic_output.h"
#include "sdinterp/errors.h"

namespace sdinterp::cli {
namespace {

std::atomic<bool> g_interrupted{false};

void write_text(const char* text) {
  ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

// The first SIGINT or SIGTERM asks the run to stop (it checks between model calls, decoded frames
// and outputs); the second ends the process at once, with the documented status, after removing
// the temporaries of unfinished outputs. Only async-signal-safe calls here.
extern "C" void on_signal(int) {
  if (!g_interrupted.exchange(true)) return;
  write_text("sdinterp: interrupted again: stopping now\n");
  io::remove_listed_temporaries();
  ::_exit(kExitInterrupted);
}

// A crash (a bug in sdinterp or a library under it) ends with one line naming the signal and the
// call stack, instead of a bare "Segmentation fault", and the documented internal-error status.
// Only async-signal-safe calls here; backtrace() is primed at install time so that it does not
// load libgcc inside the handler.
extern "C" void on_crash(int signal_number) {
  write_text("sdinterp: internal error: ");
  write_text(signal_number == SIGSEGV  ? "segmentation fault"
             : signal_number == SIGBUS ? "bus error"
             : signal_number == SIGILL ? "illegal instruction"
             : signal_number == SIGFPE ? "arithmetic fault"
                                       : "fatal signal");
  write_text(" (a bug: please report it with the command line and this stack)\n");
  void* frames[64];
  const int count = ::backtrace(frames, 64);
  ::backtrace_symbols_fd(frames, count, STDERR_FILENO);
  ::_exit(kExitInternal);
}

}  // namespace

void install_crash_handlers() {
  void* prime[1];
  ::backtrace(prime, 1);
  // Its own stack, so that a stack overflow is reported too.
  static char alternate_stack[64 * 1024];
  stack_t ss{};
  ss.ss_sp = alternate_stack;
  ss.ss_size = sizeof alternate_stack;
  ::sigaltstack(&ss, nullptr);
  struct sigaction action {};
  action.sa_handler = on_crash;
  action.sa_flags = SA_ONSTACK | SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  for (int s : {SIGSEGV, SIGBUS, SIGILL, SIGFPE}) ::sigaction(s, &action, nullptr);
}

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  for (int s : {SIGINT, SIGTERM}) ::sigaction(s, &action, nullptr);
}

bool interrupt_requested() { return g_interrupted.load(); }

}  // namespace sdinterp::cli
