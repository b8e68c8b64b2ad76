#include "cli/interrupt.h"

#include <atomic>
#include <csignal>

namespace sdinterp::cli {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_signal(int signal_number) {
  g_interrupted.store(true);
  // The next signal of this kind takes the default action: a stuck run can still be killed.
  std::signal(signal_number, SIG_DFL);
}

}  // namespace

void install_interrupt_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

bool interrupt_requested() { return g_interrupted.load(); }

}  // namespace sdinterp::cli
