// The CLI's subcommands. Each is an options struct filled by CLI11 and a run function that
// returns an exit status; errors are thrown as sdinterp::Error and printed once by main.
#pragma once

#include <CLI/CLI.hpp>

namespace sdinterp::cli {

// Each add_* registers a subcommand on `app`; its callback runs the command and stores the
// exit status in `status`.
void add_generate_command(CLI::App& app, int& status);
void add_tokenize_command(CLI::App& app, int& status);
void add_encode_command(CLI::App& app, int& status);
void add_run_command(CLI::App& app, int& status);
void add_batch_command(CLI::App& app, int& status);
void add_info_command(CLI::App& app, int& status);
void add_report_command(CLI::App& app, int& status);

// The frames argument of `encode` and `report` (io::frame_files reads it).
inline constexpr const char* kFramesHelp =
    "PNG frames in display order (all the same size), or a folder of them (its .png files in name order, "
    "frame_2 before frame_10)";

}  // namespace sdinterp::cli
