// libsdinterp_codecs.so: the WebP and MP4 sinks, kept out of the executable so that libwebp and
// FFmpeg (with the dozens of libraries FFmpeg pulls in) are loaded only when a .webp or .mp4 is
// written. Everything else (GIF, PNG frames, the model) starts without them: 0.02 s less start-up
// for every command, and LibTorch's OpenMP runtime is not loaded early by FFmpeg's resampler
// before sdinterp has set its environment (src/cli/runtime_loader.cpp).
#pragma once

#include <memory>
#include <string>

#include "io/atomic_output.h"
#include "sdinterp/frame_sink.h"

namespace sdinterp::sinks {

std::unique_ptr<FrameSink> make_webp_sink(const std::string& path, const FrameSinkOptions& options);
std::unique_ptr<FrameSink> make_mp4_sink(const std::string& path, const FrameSinkOptions& options);

}  // namespace sdinterp::sinks

// The module's one exported entry point (looked up by make_codec_sink): a new sink of `kind`
// ("webp" or "mp4"), or null for another kind; throws sdinterp errors as the sinks do. Its
// temporaries are listed in `temporaries` (the process's list; see io/atomic_output.h).
extern "C" sdinterp::FrameSink* sdinterp_codecs_make_sink(const char* kind, const std::string& path,
                                                          const sdinterp::FrameSinkOptions& options,
                                                          const sdinterp::io::TemporaryList* temporaries);
