// Ctrl-C and SIGTERM: the first one asks the run to stop after the current denoising step
// (temporaries are removed on the way out); a second one ends the process at once.
#pragma once

namespace sdinterp::cli {

void install_interrupt_handlers();
// SIGSEGV, SIGBUS, SIGILL, SIGFPE: one "internal error" line, the call stack, exit status 1.
void install_crash_handlers();
bool interrupt_requested();

}  // namespace sdinterp::cli
