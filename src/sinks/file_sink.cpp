// make_file_sink: the output's extension picks the format.
#include <memory>
#include <string>

#include "sdinterp/errors.h"
#include "sdinterp/frame_sink.h"
#include "sinks/atomic_output.h"
#include "sinks/sink_common.h"
#include "sinks/sinks.h"

namespace sdinterp {

std::string supported_file_extensions() { return ".gif, .webp, .mp4"; }

Dither parse_dither(const std::string& name) {
  if (name == "none") return Dither::kNone;
  if (name == "ordered") return Dither::kOrdered;
  if (name == "diffusion") return Dither::kDiffusion;
  throw ConfigError("unknown --dither \"" + name + "\"; choose one of: diffusion, ordered, none");
}

std::unique_ptr<FrameSink> make_file_sink(const std::string& path, const FrameSinkOptions& options) {
  std::string ext = sinks::lower_extension(path);
  std::unique_ptr<FrameSink> sink;
  if (ext == ".gif") {
    sink = sinks::make_gif_sink(path, options);
  } else if (ext == ".webp") {
    sink = sinks::make_background_sink(sinks::make_codec_sink("webp", path, options));
  } else if (ext == ".mp4") {
    sink = sinks::make_background_sink(sinks::make_codec_sink("mp4", path, options));
  } else {
    throw ConfigError("cannot tell the output format of '" + path + "' from its extension; use " +
                      supported_file_extensions() + ", or a folder for PNG frames");
  }
  if (options.boomerang) sink = sinks::make_boomerang_sink(std::move(sink), path);
  return sink;
}

}  // namespace sdinterp
