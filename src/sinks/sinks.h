// The file sinks behind make_file_sink, one per format. Each validates its options and throws
// ConfigError before creating anything.
#pragma once

#include <memory>
#include <string>

#include "sdinterp/frame_sink.h"

namespace sdinterp::sinks {

std::unique_ptr<FrameSink> make_gif_sink(const std::string& path, const FrameSinkOptions& options);
std::unique_ptr<FrameSink> make_webp_sink(const std::string& path, const FrameSinkOptions& options);
std::unique_ptr<FrameSink> make_mp4_sink(const std::string& path, const FrameSinkOptions& options);

}  // namespace sdinterp::sinks
