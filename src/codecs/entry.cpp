#include <cstring>

#include "codecs/codecs.h"

extern "C" __attribute__((visibility("default"))) sdinterp::FrameSink* sdinterp_codecs_make_sink(
    const char* kind, const std::string& path, const sdinterp::FrameSinkOptions& options,
    const sdinterp::io::TemporaryList* temporaries) {
  if (temporaries != nullptr) sdinterp::io::use_temporary_list(*temporaries);
  if (std::strcmp(kind, "webp") == 0) return sdinterp::sinks::make_webp_sink(path, options).release();
  if (std::strcmp(kind, "mp4") == 0) return sdinterp::sinks::make_mp4_sink(path, options).release();
  return nullptr;
}
