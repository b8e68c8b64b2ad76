#include "cli/interrupt.h"

#include <execinfo.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstring>

#include "io/atomic_output.h"
#include "sdinterp/errors.h"

namespace sdinterp::cli {
namespace {

std::atomic<bool> g_interrupted{false};
std::atomic<bool> g_crashing{false};  // a thread is reporting a crash
constexpr int kCrashSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};

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

// SIGPIPE: whatever reads sdinterp's output (`... --progress json | head -1`) has gone. The run
// stops as for a first SIGINT, removing its temporaries (by default the signal ended the process
// and left them for the next run). Never escalates: each later write to the pipe raises it again.
extern "C" void on_pipe_closed(int) { g_interrupted.store(true); }

// Parses a hexadecimal number at `p`, moving past it.
uintptr_t parse_hex(const char*& p) {
  uintptr_t value = 0;
  for (;; ++p) {
    const char c = *p;
    const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return value;
    value = value * 16 + static_cast<uintptr_t>(digit);
  }
}

// The file mapped at `address`, from /proc/self/maps, into `path` (empty when none or unreadable).
// System calls and a fixed buffer only: for the signal handler.
void mapped_file_at(uintptr_t address, char* path, size_t path_size) {
  path[0] = '\0';
  const int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  static char buf[16384];  // lines "START-END PERMS OFFSET DEV INODE   PATH\n", kept whole across reads
  size_t have = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf + have, sizeof buf - 1 - have);
    if (n <= 0) break;
    have += static_cast<size_t>(n);
    buf[have] = '\0';
    char* line = buf;
    char* end = nullptr;
    while ((end = std::strchr(line, '\n')) != nullptr) {
      *end = '\0';
      const char* p = line;
      const uintptr_t start = parse_hex(p);
      ++p;  // '-'
      const uintptr_t stop = parse_hex(p);
      if (address >= start && address < stop) {
        const char* name = std::strchr(line, '/');
        if (name != nullptr) {
          std::strncpy(path, name, path_size - 1);
          path[path_size - 1] = '\0';
        }
        ::close(fd);
        return;
      }
      line = end + 1;
    }
    have = static_cast<size_t>(buf + have - line);
    std::memmove(buf, line, have);
    if (have == sizeof buf - 1) have = 0;  // a line longer than the buffer: not one of ours
  }
  ::close(fd);
}

// A bus error at an address past the end of a mapped file (BUS_ADRERR): the file was cut short
// while sdinterp read it, most likely a bundle's weights file written over in place. That is no
// bug: one line naming the file, the temporaries removed, the bundle's exit status.
// Returns only when `address` lies in no mapped file (then it is reported as a crash).
void on_file_cut_short(uintptr_t address) {
  static char path[4096];
  mapped_file_at(address, path, sizeof path);
  if (path[0] == '\0') return;
  write_text("sdinterp: error: ");
  write_text(path);
  write_text(
      " was cut short while this run read it, so the run stopped and wrote nothing (replace a bundle's "
      "files by renaming new ones into place, not by writing over them)\n");
  io::remove_listed_temporaries();
  ::_exit(kExitModel);
}

// A crash (a bug in sdinterp or a library under it) ends with one line naming the signal and the
// call stack, instead of a bare "Segmentation fault", and the documented internal-error status.
// Only async-signal-safe calls here; backtrace() is primed at install time so that it does not
// load libgcc inside the handler.
extern "C" void on_crash(int signal_number, siginfo_t* info, void*) {
  // LibTorch's worker threads fault together when they share a cause (a file cut short under all
  // of them): the first one reports and ends the process, the others wait for that.
  if (g_crashing.exchange(true)) {
    for (;;) ::pause();
  }
  if (signal_number == SIGBUS && info != nullptr && info->si_code == BUS_ADRERR) {
    on_file_cut_short(reinterpret_cast<uintptr_t>(info->si_addr));
  }
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
  action.sa_sigaction = on_crash;
  // Not SA_RESETHAND: a second thread's fault would then end the process before the first one has
  // reported. A fault inside the handler still ends the process: the four are blocked there.
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  for (int s : kCrashSignals) sigaddset(&action.sa_mask, s);
  for (int s : kCrashSignals) ::sigaction(s, &action, nullptr);
}

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  for (int s : {SIGINT, SIGTERM}) ::sigaction(s, &action, nullptr);
  // SIGHUP (the terminal closed) stops the run as SIGTERM does, and SIGPIPE as a first SIGINT;
  // either is left alone when this process was started with it ignored (nohup, a caller's choice).
  auto unless_ignored = [](int s, void (*handler)(int)) {
    struct sigaction current {};
    if (::sigaction(s, nullptr, &current) == 0 && current.sa_handler == SIG_IGN) return;
    struct sigaction a {};
    a.sa_handler = handler;
    a.sa_flags = SA_RESTART;
    sigemptyset(&a.sa_mask);
    ::sigaction(s, &a, nullptr);
  };
  unless_ignored(SIGHUP, on_signal);
  unless_ignored(SIGPIPE, on_pipe_closed);
}

bool interrupt_requested() { return g_interrupted.load(); }

}  // namespace sdinterp::cli
