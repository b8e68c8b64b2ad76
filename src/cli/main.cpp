// sdinterp's entry point: subcommands, and the one place errors become a line and an exit status.
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/interrupt.h"
#include "sdinterp/closest_name.h"
#include "sdinterp/errors.h"

namespace {

std::vector<std::string> command_names(CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* s : app.get_subcommands([](CLI::App*) { return true; })) names.push_back(s->get_name());
  return names;
}

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& n : names) text += (text.empty() ? "" : ", ") + n;
  return text;
}

std::string did_you_mean(const std::optional<std::string>& name) {
  return name ? " (did you mean " + *name + "?)" : "";
}

// A command or an option that sdinterp does not have, in the project's words with the nearest
// name and the help to see. CLI11 would call it "not expected", and only after naming any required
// option missing ("--bundle is required" for 'generate --framez 3'). Tokens after "--" are
// arguments.
std::optional<std::string> unknown_name(CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return std::nullopt;  // --help, --version; others: no command
  const std::string first = argv[1];
  const std::vector<std::string> commands = command_names(app);
  CLI::App* sub = nullptr;
  for (CLI::App* s : app.get_subcommands([](CLI::App*) { return true; })) {
    if (s->get_name() == first) sub = s;
  }
  if (sub == nullptr) {
    return "unknown command '" + first + "'" + did_you_mean(sdinterp::closest_name(first, commands)) +
           "; the commands: " + joined(commands) + " (see sdinterp --help)";
  }
  std::vector<std::string> options;
  for (const CLI::Option* o : sub->get_options()) {
    for (const std::string& name : o->get_lnames()) options.push_back("--" + name);
  }
  for (int i = 2; i < argc; ++i) {
    const std::string token = argv[i];
    if (token == "--") break;
    if (token.size() <= 2 || token.rfind("--", 0) != 0) continue;
    const std::string name = token.substr(0, token.find('='));
    if (sub->get_option_no_throw(name) != nullptr) continue;
    if (app.get_option_no_throw(name) != nullptr) {
      return name + " is sdinterp's own option, not " + first + "'s: sdinterp " + name;
    }
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string text = "unknown option " + name + did_you_mean(sdinterp::closest_name(lower, options));
    const std::string before = argv[i - 1];
    const CLI::Option* taker = before.find('=') == std::string::npos ? sub->get_option_no_throw(before) : nullptr;
    if (i > 2 && taker != nullptr && taker->get_items_expected_min() > 0) {
      text += "; a value that starts with -- is written " + before + "=" + token;
    }
    return text + " (see sdinterp " + first + " --help)";
  }
  return std::nullopt;
}

// CLI11's words for a parse error in the project's: a flag given more often than it takes
// ("--seed: At Most 1 required but received 2"), no command, an extra argument, an option without
// its value, a switch given a value, a missing argument. Others read well as they are.
std::string usage_error_text(const std::string& what, CLI::App& app, CLI::App* sub) {
  auto after = [&what](const std::string& marker) -> std::optional<std::string> {
    const auto at = what.find(marker);
    if (at == std::string::npos) return std::nullopt;
    return what.substr(at + marker.size());
  };
  if (const auto at = what.find(": At Most 1 required but received "); at != std::string::npos) {
    return what.substr(0, at) + " given " + *after(": At Most 1 required but received ") + " times; give it once";
  }
  if (what == "A subcommand is required") return "give a command: " + joined(command_names(app));
  if (what.rfind("The following argument", 0) == 0) {
    std::vector<std::string> extra = sub != nullptr ? sub->remaining() : app.remaining();
    std::string list;
    for (const std::string& e : extra) list += (list.empty() ? "'" : ", '") + e + "'";
    if (list.empty()) {  // CLI11 kept none (after "--"): its own list
      return std::string(what.rfind("The following arguments", 0) == 0 ? "unexpected arguments"
                                                                       : "unexpected argument") +
             what.substr(what.find(':'));
    }
    return "unexpected argument" + std::string(extra.size() > 1 ? "s " : " ") + list;
  }
  if (const auto missing = what.find(" required ");
      missing != std::string::npos && what.size() > 8 && what.compare(what.size() - 8, 8, " missing") == 0) {
    const std::string name = what.substr(0, what.find(':'));
    return name + " needs a value (" + what.substr(missing + 10, what.size() - 8 - missing - 10) + ")";
  }
  if (const auto value = after("Could not convert: ")) {
    const auto eq = value->find(" = ");
    if (eq != std::string::npos) {
      return value->substr(0, eq) + " is a switch: give it alone (or =true, =false), not '" + value->substr(eq + 3) +
             "'";
    }
  }
  if (what.size() > 12 && what.compare(what.size() - 12, 12, " is required") == 0 && what[0] != '-') {
    return "missing the " + what.substr(0, what.size() - 12) + " argument";
  }
  return what;
}

// A command that succeeded but could not write all it printed did not succeed: its standard output
// was a pipe whose reader went (`sdinterp tokenize ... | head -1`: SIGPIPE, interrupted, as a run
// whose progress reader goes), or a file or device that refused the bytes (`> /dev/full`, a closed
// descriptor). A caller that ignores SIGPIPE has chosen that writes to a closed pipe just fail.
int with_standard_output_checked(int status) {
  std::cout.flush();
  if (status != sdinterp::kExitOk || std::cout.good()) return status;
  if (sdinterp::cli::interrupt_requested()) {
    std::cerr << "sdinterp: error: interrupted\n";
    return sdinterp::kExitInterrupted;
  }
  struct stat out {};
  if (::fstat(STDOUT_FILENO, &out) == 0 && S_ISFIFO(out.st_mode)) return status;
  std::cerr << "sdinterp: error: cannot write to standard output (closed, or its disk is full)\n";
  return sdinterp::kExitIo;
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
    if (const std::optional<std::string> unknown = unknown_name(app, argc, argv)) {
      std::cerr << "sdinterp: error: " << *unknown << "\n";
      return kExitUsage;
    }
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string sub;
    CLI::App* chosen = nullptr;
    for (CLI::App* s : app.get_subcommands()) {
      sub = " " + s->get_name();
      chosen = s;
    }
    std::cerr << "sdinterp: error: " << usage_error_text(e.what(), app, chosen) << " (see sdinterp" << sub
              << " --help)\n";
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

int main(int argc, char** argv) { end_process(with_standard_output_checked(run_command(argc, argv))); }
