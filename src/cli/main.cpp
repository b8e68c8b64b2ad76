// sdinterp's entry point: subcommands, and the one place errors become a line and an exit status.
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli/commands.h"
#include "cli/interrupt.h"
#include "sdinterp/errors.h"

namespace {

// CLI11's words for a flag given more often than it takes ("--seed: At Most 1 required but
// received 2") in the project's; other parse errors read well as they are.
std::string usage_error_text(const std::string& what) {
  const std::string marker = ": At Most 1 required but received ";
  const auto at = what.find(marker);
  if (at == std::string::npos) return what;
  return what.substr(0, at) + " given " + what.substr(at + marker.size()) + " times; give it once";
}

// Ends the process once a command is over: its outputs are published and closed, its threads
// joined, its lines written. What a normal exit would still do is tear down the loaded bundle and
// LibTorch's static state (operator registries, oneDNN's pass tables, ...), memory the kernel
// frees anyway: measured on the development machine, 0.14-0.17 s of every command (tiny-sd's walk
// and an SD-1.5-sized one), about 5% of the main job's. Under AddressSanitizer the normal exit
// stays, so that its leak check still runs.
[[noreturn]] void end_process(int status) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
#ifndef __SANITIZE_ADDRESS__
  std::_Exit(status);
#else
  std::exit(status);
#endif
}

int run_command(int argc, char** argv) {
  using namespace sdinterp;
  CLI::App app{"sdinterp: Stable Diffusion latent-space walks as animations"};
  app.name("sdinterp");
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("sdinterp ") + SDINTERP_VERSION);
  int status = kExitOk;
  cli::add_generate_command(app, status);
  cli::add_tokenize_command(app, status);
  cli::add_run_command(app, status);
  cli::add_batch_command(app, status);
  cli::add_encode_command(app, status);
  cli::add_info_command(app, status);
  cli::add_report_command(app, status);
  cli::install_interrupt_handlers();
  cli::install_crash_handlers();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string sub;
    for (const CLI::App* s : app.get_subcommands()) sub = " " + s->get_name();
    std::cerr << "sdinterp: error: " << usage_error_text(e.what()) << " (see sdinterp" << sub << " --help)\n";
    return kExitUsage;
  } catch (const Error& e) {
    std::cerr << "sdinterp: error: " << e.what() << "\n";
    return e.code();
  } catch (const std::exception& e) {
    std::cerr << "sdinterp: internal error: " << e.what() << "\n";
    return kExitInternal;
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) { end_process(run_command(argc, argv)); }
