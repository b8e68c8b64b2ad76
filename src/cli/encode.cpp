// `sdinterp encode`: re-encodes PNG frames already on disk (from --png-dir, or anywhere) into
// a GIF, WebP or MP4 with other settings. No model is loaded.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/interrupt.h"
#include "sdinterp/frame_sink.h"
#include "sinks/encode_frames.h"

namespace sdinterp::cli {
namespace {

struct EncodeOptions {
  std::vector<std::string> frames;
  std::string output;
  std::string dither = "diffusion";
  FrameSinkOptions sink;
};

int run_encode(EncodeOptions& o) {
  o.sink.dither = parse_dither(o.dither);
  const std::string written = sinks::encode_frames(o.frames, o.output, o.sink, interrupt_requested);
  std::cout << "wrote " << written << std::endl;
  return 0;
}

}  // namespace

void add_encode_command(CLI::App& app, int& status) {
  auto opts = std::make_shared<EncodeOptions>();
  FrameSinkOptions& s = opts->sink;
  CLI::App* sub = app.add_subcommand(
      "encode", "Encode PNG frames into an animation (.gif, .webp, .mp4) without the model");
  sub->add_option("frames", opts->frames, "PNG frames in display order (all the same size)")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("-o,--output", opts->output,
                  "Output: " + supported_file_extensions() +
                      " by extension, or a folder ending in / for PNG frames")
      ->required();
  sub->add_option("--fps", s.fps, "Frames per second")->capture_default_str();
  sub->add_option("--loop", s.loop, "GIF/WebP: times the animation plays, 0 = forever")
      ->capture_default_str();
  sub->add_flag("--boomerang", s.boomerang,
                "Play forward then back (the end frames are not repeated)");
  sub->add_option("--dither", opts->dither,
                  "GIF: diffusion (error diffusion, the best quality), ordered (a fixed pattern, "
                  "no crawl) or none (flat areas band, least noise)")
      ->capture_default_str();
  sub->add_flag("--lossless", s.lossless, "WebP: lossless frames");
  sub->add_option("--quality", s.quality, "WebP: lossy quality 0..100")->capture_default_str();
  sub->add_option("--crf", s.crf, "MP4: H.264 constant rate factor 0..51, lower is better")
      ->capture_default_str();
  sub->add_flag("--overwrite", s.overwrite, "Replace an existing output");
  sub->callback([opts, &status] { status = run_encode(*opts); });
}

}  // namespace sdinterp::cli
