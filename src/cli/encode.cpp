// `sdinterp encode`: re-encodes PNG frames already on disk (from --png-dir, or anywhere) into
// a GIF, WebP or MP4 with other settings. No model is loaded.
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/interrupt.h"
#include "sdinterp/config.h"
#include "sdinterp/errors.h"
#include "sdinterp/frame_sink.h"
#include "sdinterp/job.h"
#include "sdinterp/number_text.h"
#include "sinks/encode_frames.h"

namespace sdinterp::cli {
namespace {

struct EncodeOptions {
  std::vector<std::string> frames;
  std::string dither = "diffusion";
  // --fps, --loop, --quality, --crf as given: read as generate's flags are, then checked by the
  // same OutputOptions::format_problems().
  std::map<std::string, std::string> numbers;
  std::map<std::string, CLI::Option*> number_options;
  CLI::Option* dither_option = nullptr;
  CLI::Option* lossless_option = nullptr;
  OutputOptions out;  // out.output: the file, or a folder ending in / for PNG frames
};

int run_encode(EncodeOptions& o) {
  OutputOptions& s = o.out;
  for (const auto& [key, text] : o.numbers) {
    if (o.number_options.at(key)->count() == 0) continue;
    const double value = flag_value(key, text).get<double>();
    if (key == "fps")
      s.fps = value;
    else if (key == "loop")
      s.loop = static_cast<int>(value);
    else if (key == "quality")
      s.quality = value;
    else if (key == "crf")
      s.crf = static_cast<int>(value);
  }
  s.dither = parse_dither(o.dither);
  if (const std::vector<std::string> problems = s.format_problems(); !problems.empty()) {
    std::string line;
    for (const std::string& p : problems) line += (line.empty() ? "" : "; ") + p;
    throw ConfigError(line);
  }
  std::vector<std::string> given;
  for (const auto& [key, option] : o.number_options) {
    if (option->count() > 0) given.push_back(key);
  }
  if (o.dither_option->count() > 0) given.push_back("dither");
  if (o.lossless_option->count() > 0) given.push_back("lossless");
  const bool folder = !s.output.empty() && s.output.back() == '/';
  for (const std::string& warning : ignored_format_options(given, folder ? "" : s.output, folder ? s.output : "")) {
    std::cerr << "sdinterp: warning: " << warning << "\n";
  }
  const std::string written = sinks::encode_frames(o.frames, s.output, s, interrupt_requested);
  std::cout << "wrote " << written << std::endl;
  return 0;
}

}  // namespace

void add_encode_command(CLI::App& app, int& status) {
  auto opts = std::make_shared<EncodeOptions>();
  OutputOptions& s = opts->out;
  CLI::App* sub =
      app.add_subcommand("encode", "Encode PNG frames into an animation (.gif, .webp, .mp4) without the model");
  // A frame that cannot be read is an input problem (exit 4, as any unreadable input), found
  // when the frames are read rather than as a flag error.
  sub->add_option("frames", opts->frames, "PNG frames in display order (all the same size)")->required();
  sub->add_option("-o,--output", s.output,
                  "Output: " + supported_file_extensions() + " by extension, or a folder ending in / for PNG frames")
      ->required();
  auto number = [&](const std::string& key, double fallback, const std::string& help) {
    opts->number_options[key] =
        sub->add_option("--" + key, opts->numbers[key], help + ": " + range_text(numeric_option(key)))
            ->type_name(numeric_option(key).integer ? "INT" : "NUMBER")
            ->default_str(number_text(fallback));
  };
  number("fps", s.fps, "Frames per second (GIF: up to 50, MP4: up to 240)");
  number("loop", s.loop, "GIF/WebP: times the animation plays (WebP: up to 65535)");
  sub->add_flag("--boomerang", s.boomerang, "Play forward then back (the end frames are not repeated)");
  opts->dither_option = sub->add_option("--dither", opts->dither,
                                        "GIF: diffusion (error diffusion, the best quality), ordered (a fixed pattern, "
                                        "no crawl) or none (flat areas band, least noise)")
                            ->capture_default_str();
  opts->lossless_option = sub->add_flag("--lossless", s.lossless, "WebP: lossless frames");
  number("quality", s.quality, "WebP: lossy quality");
  number("crf", s.crf, "MP4: H.264 constant rate factor");
  sub->add_flag("--overwrite", s.overwrite, "Replace an existing output");
  sub->callback([opts, &status] { status = run_encode(*opts); });
}

}  // namespace sdinterp::cli
