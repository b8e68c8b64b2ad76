// The file sinks behind make_file_sink, one per format. Each validates its options and throws
// ConfigError before creating anything.
#pragma once

#include <memory>
#include <string>

#include "sdinterp/frame_sink.h"

namespace sdinterp::sinks {

std::unique_ptr<FrameSink> make_gif_sink(const std::string& path, const FrameSinkOptions& options);

// WebP and MP4 sinks, from libsdinterp_codecs.so (src/codecs), loaded on first use: `kind` is
// "webp" or "mp4". Throws Error (kExitInternal) when the library cannot be loaded.
std::unique_ptr<FrameSink> make_codec_sink(const std::string& kind, const std::string& path,
                                           const FrameSinkOptions& options);

}  // namespace sdinterp::sinks
