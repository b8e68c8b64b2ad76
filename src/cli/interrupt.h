// Ctrl-C, SIGTERM and SIGHUP: the first one asks the run to stop at the next check (after a
// denoising step, a decoded chunk of frames, an output; temporaries are removed on the way out, exit
// status 130); a second one ends the process at once, still removing the temporaries it lists.
// SIGPIPE (the reader of stdout has gone) asks the run to stop, however often it comes. SIGHUP and
// SIGPIPE keep their disposition when it is "ignore".
#pragma once

namespace sdinterp::cli {

void install_interrupt_handlers();
// SIGSEGV, SIGBUS, SIGILL, SIGFPE: one "internal error" line, the call stack, exit status 1. A bus
// error past the end of a mapped file (a bundle's weights file cut short while in use): one line
// naming the file, the temporaries removed, exit status 3.
void install_crash_handlers();
bool interrupt_requested();

}  // namespace sdinterp::cli
