// `sdinterp encode`: re-encodes PNG frames already on disk (from --png-dir, or anywhere) into
// a GIF, WebP or MP4 with other settings. No model is loaded.
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/interrupt.h"
#include "cli/job_flags.h"
#include "io/png_io.h"
#include "sdinterp/config.h"
#include "sdinterp/errors.h"
#include "sdinterp/frame_sink.h"
#include "sdinterp/job.h"
#include "sdinterp/number_text.h"
#include "sinks/encode_frames.h"

namespace sdinterp::cli {
namespace {

// The job keys `encode` takes as flags: the outputs' settings, read and checked as generate's are.
std::vector<std::string> encode_keys() {
  std::vector<std::string> keys = format_option_keys();  // fps, loop, dither, lossless, quality, crf
  keys.insert(keys.end(), {"boomerang", "overwrite"});
  return keys;
}

int run_encode(const std::vector<std::string>& frames, const std::string& output, const JobFlags& flags) {
  const nlohmann::json given = flags.given();
  RunConfig config;
  apply_job(given, config, "");  // "": flags name themselves
  OutputOptions& out = config;
  if (const std::vector<std::string> problems = out.format_problems(); !problems.empty()) {
    std::string line;
    for (const std::string& p : problems) line += (line.empty() ? "" : "; ") + p;
    throw ConfigError(line);
  }
  std::vector<std::string> keys;
  for (const auto& [key, value] : given.items()) keys.push_back(key);
  const bool folder = !output.empty() && output.back() == '/';
  for (const std::string& warning : ignored_format_options(keys, folder ? "" : output, folder ? output : "")) {
    std::cerr << "sdinterp: warning: " << warning << "\n";
  }
  const std::string written = sinks::encode_frames(io::frame_files(frames), output, out, interrupt_requested);
  std::cout << "wrote " << written << std::endl;
  return 0;
}

}  // namespace

void add_encode_command(CLI::App& app, int& status) {
  CLI::App* sub =
      app.add_subcommand("encode", "Encode PNG frames into an animation (.gif, .webp, .mp4) without the model");
  auto frames = std::make_shared<std::vector<std::string>>();
  auto output = std::make_shared<std::string>();
  // A frame that cannot be read is an input problem (exit 4, as any unreadable input), found
  // when the frames are read rather than as a flag error.
  sub->add_option("frames", *frames, kFramesHelp)->required();
  sub->add_option("-o,--output", *output,
                  "Output: " + supported_file_extensions() + " by extension, or a folder ending in / for PNG frames")
      ->required();
  auto flags = std::make_shared<JobFlags>(sub, JobFlagUse::kSettings, encode_keys());
  sub->callback([frames, output, flags, &status] { status = run_encode(*frames, *output, *flags); });
}

}  // namespace sdinterp::cli
